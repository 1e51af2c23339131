"""When feature rows become visible in PostgreSQL, seen from outside as a serving client would.

A watcher thread polls the 5-minute table for the probe users' rows (the primary key starts with
user_id, so each poll is a few index scans) and keeps the wall time of the poll that first saw each
(user_id, window_end). An event's freshness is the first sight of its first window's row minus
the time PutRecords acknowledged it.

For fresh reads, FreshWatcher polls the group's fresh slices the same way and an event is visible
at the first poll whose served version of its slice (the newest with served_from <= the poll's
time, jobs/reads/fresh.py's rule) counts the user's events in that slice up to this one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

import psycopg

from jobs.definitions.fresh_slices import TABLE_SUFFIX
from jobs.reads.fresh import SliceVersions
from tests.perf.baseline_features import EPOCH, HOP_SLIDE_MS, hop_window_ends
from tests.perf.feed import Probe
from tests.perf.worker import Worker

POLL_S = 0.15
FRESH_TABLE = "user_activity_5m" + TABLE_SUFFIX  # its slices are one slide (1 minute) wide


def first_window_end_ms(time_ms: int) -> int:
    return hop_window_ends(time_ms)[0]


_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // _MS


class RowWatcher(Worker):
    """Polls ``table`` every 150 ms for rows of ``users`` whose window_end is still awaited."""

    def __init__(self, conninfo: dict[str, Any], users: Iterable[str], wanted: Iterable[tuple],
                 table: str = "user_activity_5m") -> None:
        super().__init__("row-watcher")
        self.conninfo, self.table = conninfo, table
        self.users = sorted(set(users))
        self.waiting = set(wanted)  # (user_id, window_end ms) not yet seen
        self.first_seen: dict[tuple[str, int], float] = {}
        self.polls = 0

    def work(self) -> None:
        with psycopg.connect(**self.conninfo, autocommit=True) as connection:
            while not self._stop_event.is_set() and self.waiting:
                self._poll(connection)
                self._stop_event.wait(POLL_S)

    def _poll(self, connection: psycopg.Connection) -> None:
        since = min(end for _, end in self.waiting)
        asked = time.time()  # the snapshot is taken at the statement's start: rows were visible by now
        rows = connection.execute(
            f"SELECT user_id, window_end FROM {self.table} WHERE user_id = ANY(%s) AND window_end >= %s",
            (self.users, EPOCH + (since * _MS))).fetchall()
        self.polls += 1
        for user, end in rows:
            key = (user, _ms(end))
            if key in self.waiting:
                self.waiting.discard(key)
                self.first_seen[key] = asked


FreshKey = tuple[str, int, int]  # (user_id, slice start ms, events a version must count)


def fresh_keys(probes: Sequence[Probe]) -> dict[int, FreshKey]:
    """Per probe event (by feed index): its user, its slice's start, and how many of the user's
    events dated in that slice the feed holds up to and including it (one shard: the job reads them
    in feed order). ``probes`` must be every probe event of the feed, the warm-up's too."""
    counted: dict[tuple[str, int], int] = {}
    keys = {}
    for probe in probes:
        slice_key = (probe.user_id, probe.time_ms - probe.time_ms % HOP_SLIDE_MS)
        counted[slice_key] = counted.get(slice_key, 0) + 1
        keys[probe.index] = (*slice_key, counted[slice_key])
    return keys


class FreshWatcher(RowWatcher):
    """Polls the fresh slice table every 150 ms for the awaited FreshKeys, as a fresh read would."""

    def __init__(self, conninfo: dict[str, Any], wanted: Iterable[FreshKey], table: str = FRESH_TABLE) -> None:
        wanted = set(wanted)
        super().__init__(conninfo, {user for user, _, _ in wanted}, wanted, table)

    def _poll(self, connection: psycopg.Connection) -> None:
        since = min(start for _, start, _ in self.waiting)
        users = sorted({user for user, _, _ in self.waiting})
        asked = time.time()  # a fresh read as of now: versions served by now
        rows = connection.execute(
            f"SELECT user_id, window_start, served_from, version, event_count FROM {self.table} "
            "WHERE user_id = ANY(%s) AND window_start >= %s", (users, EPOCH + since * _MS)).fetchall()
        self.polls += 1
        versions = SliceVersions()
        for user, start, served_from, version, events in rows:
            versions.add(user, start, served_from, version, {"event_count": events})
        versions.sort()
        moment = EPOCH + timedelta(seconds=asked)
        for key in list(self.waiting):
            user, start, needed = key
            served = versions.served(user, EPOCH + start * _MS, moment)
            if served is not None and served["event_count"] >= needed:
                self.waiting.discard(key)
                self.first_seen[key] = asked


@dataclass(frozen=True)
class Freshness:
    samples: list[float]  # seconds, one per probe event whose row was seen
    unseen: int  # probe events whose row never appeared before the run ended
    # Seconds from the earliest moment the row could be final (its window's end + the watermark
    # delay, on the event-time clock the live feed keeps close to the wall clock) to its first
    # sight: the pipeline's own part of the freshness, without the wait for the window to end.
    after_close: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        return percentile(self.samples, share)


def percentile(samples: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest sample with at least ``share`` of the samples at or below it."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def from_rows(probes: Sequence[Probe], acked: Sequence[float], first_seen: dict[tuple[str, int], float],
              delay_s: float) -> Freshness:
    """Freshness of each probe event sent, from when its first window's row was first seen."""
    samples, after_close, unseen = [], [], 0
    for probe in probes:
        if not acked[probe.index]:
            continue
        end_ms = first_window_end_ms(probe.time_ms)
        seen = first_seen.get((probe.user_id, end_ms))
        if seen is None:
            unseen += 1
        else:
            samples.append(seen - acked[probe.index])
            after_close.append(seen - (end_ms / 1000 + delay_s))
    return Freshness(samples, unseen, after_close)


def _from_sights(probes: Sequence[Probe], acked: Sequence[float],
                 seen_at: Callable[[Probe], float | None]) -> Freshness:
    samples, unseen = [], 0
    for probe in probes:
        if not acked[probe.index]:
            continue
        seen = seen_at(probe)
        if seen is None:
            unseen += 1
        else:
            samples.append(seen - acked[probe.index])
    return Freshness(samples, unseen)


def from_commits(probes: Sequence[Probe], acked: Sequence[float], commits: dict[str, float]) -> Freshness:
    """Freshness from the commit time of each probe event's own transaction (per-event upserts)."""
    return _from_sights(probes, acked, lambda probe: commits.get(probe.txid))


def from_fresh(probes: Sequence[Probe], acked: Sequence[float], first_seen: dict[FreshKey, float],
               keys: dict[int, FreshKey]) -> Freshness:
    """Freshness of each probe event sent, from the first fresh read that counted it (FreshWatcher)."""
    return _from_sights(probes, acked, lambda probe: first_seen.get(keys[probe.index]))
