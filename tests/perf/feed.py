"""Events into the Kinesis endpoint for the end-to-end runs: a backlog as fast as PutRecords goes,
or a live feed at a steady rate with each batch's acknowledgement time kept (freshness starts there).

The lines come from tests/perf/events.generate, so every run sends the same txids, users, types
and amounts; only the event times follow the wall clock of the run.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from deploy.local.producer import put_batch
from tests.perf.baseline_features import parse
from tests.perf.worker import Worker

MAX_RECORDS = 500  # PutRecords' limit
PROBE_SHARE = 50  # one user in 50 is a probe: freshness is measured on their events
SEND_INTERVAL_S = 0.1  # the live feed sends what is due every 100 ms, like a producer's linger


def is_probe(user_id: str) -> bool:
    """Users whose rows are watched; a hash, so the baselines pick the same ones on their own."""
    return zlib.crc32(user_id.encode()) % PROBE_SHARE == 0


def records(lines: Sequence[str]) -> list[dict[str, Any]]:
    """PutRecords entries, keyed by user_id as deploy/local/producer does (a user stays on one shard)."""
    return [{"Data": line.encode(), "PartitionKey": json.loads(line)["user_id"]} for line in lines]


@dataclass(frozen=True)
class Probe:
    """A probe user's event, first delivery only (a re-send adds nothing to any row)."""

    index: int  # position in the feed
    txid: str
    user_id: str
    time_ms: int


def probes(lines: Sequence[str]) -> list[Probe]:
    found, seen = [], set()
    for index, line in enumerate(lines):
        event = parse(line)
        if event is not None and is_probe(event.user_id) and event.txid not in seen:
            seen.add(event.txid)
            found.append(Probe(index, event.txid, event.user_id, event.time_ms))
    return found


def probes_at(lines: Sequence[str], indexes: Sequence[int]) -> list[Probe]:
    """The probe events at known positions (found in an earlier draw of the same events)."""
    found = []
    for index in indexes:
        event = parse(lines[index])
        if event is not None:
            found.append(Probe(index, event.txid, event.user_id, event.time_ms))
    return found


def put_all(kinesis: Any, stream: str, entries: Sequence[dict[str, Any]]) -> float:
    """Send everything, 500 records a call, one client; returns the seconds it took."""
    started = time.perf_counter()
    for first in range(0, len(entries), MAX_RECORDS):
        put_batch(kinesis, stream, list(entries[first:first + MAX_RECORDS]))
    return time.perf_counter() - started


class LiveFeed(Worker):
    """Sends ``entries[i]`` at ``start_at + i / rate`` (wall clock), in batches every 100 ms.

    ``acked[i]`` is the wall time PutRecords returned for record i's batch (0.0 until sent)."""

    def __init__(self, kinesis: Any, stream: str, entries: Sequence[dict[str, Any]], rate: float,
                 start_at: float) -> None:
        super().__init__("live-feed")
        self.kinesis, self.stream, self.entries, self.rate, self.start_at = kinesis, stream, entries, rate, start_at
        self.acked = [0.0] * len(entries)
        self.behind_s = 0.0  # the most the feed fell behind its schedule

    def work(self) -> None:
        sent = 0
        total = len(self.entries)
        while sent < total and not self._stop_event.is_set():
            due = min(total, int((time.time() - self.start_at) * self.rate))
            if due <= sent:
                self._stop_event.wait(SEND_INTERVAL_S)
                continue
            upto = min(due, sent + MAX_RECORDS)
            put_batch(self.kinesis, self.stream, list(self.entries[sent:upto]))
            now = time.time()
            self.acked[sent:upto] = [now] * (upto - sent)
            # How late the batch's newest record went out: grows only if the endpoint cannot keep up.
            self.behind_s = max(self.behind_s, now - (self.start_at + upto / self.rate))
            sent = upto

    @property
    def sent(self) -> int:
        return sum(1 for t in self.acked if t)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
