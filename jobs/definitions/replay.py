"""The cut-over of a replay upgrade: where a new version of the job takes over from the old one.

When the stateful operators change (jobs/streaming/plan_fingerprint.py) the new version cannot restore the old
one's state, so it starts with fresh state, reads the stream again from a point early enough that
every window it will write is computed from complete input, and writes each feature group's
windows only past what the old version already wrote to both sinks:

  until[g]  the newest window end of group g the old version committed to both sinks (the older of
            its progress markers: PostgreSQL feature_progress, Parquet _progress/); a new group
            takes the cut-over (the newest window end the old version wrote anywhere) rounded
            down to its slide
  start     min over groups of (until + slide - size) - events.future.skew.seconds

One cut per group, not one per sink, so that both sinks hold the same logic for every window (the
training set equals what was served after an edited feature): the sink that got further is written
again past the cut (PostgreSQL by upsert; Parquet rows and markers past it are removed first).

Why start suffices: a window the new version writes ends after until, so it starts at or after
until + slide - size; its events are dated in it, and none arrived more than the future skew before
its date (such records are quarantined). Why the new watermark agrees with a continuous run's: both
are the newest arrival-bounded event time minus the delay over the records read in arrival order;
the old run's extra history before start weighs at most start - delay, which the new run reaches
with its first record dated at or after start; records before that are dated before start, so they
only belong to windows that end at or before until, which are not written. The dedup is exact for
identical re-sends (same event time, so the first delivery arrived after start too).

The cut-over is a property group (``replay``), so it travels the same way locally (the state file
next to the checkpoints) and on Managed Flink (runtime properties written by deploy); it stays in
force after the upgrade, where it is a no-op, until the next one replaces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Mapping

GROUP = "replay"
SINKS = ("postgres", "parquet")
EPOCH = datetime(1970, 1, 1)
_UNTIL_KEY = re.compile(r"until\.([a-z][a-z0-9_]{0,62})")
_ISO = "%Y-%m-%dT%H:%M:%SZ"
# What a deployment records of the plan it runs (jobs/streaming/plan_fingerprint.py Fingerprint.summary).
RECORD_KEYS = ("fingerprint", "operators", "groups")


class ReplayError(RuntimeError):
    """The upgrade cannot replay safely; the message says why and what to do."""


@dataclass(frozen=True)
class Cut:
    fingerprint: str
    start: datetime | None                               # naive UTC; None: nothing to replay
    until: Mapping[str, datetime] = field(default_factory=dict)  # group -> window end

    def writes_after(self, group: str) -> datetime:
        """Windows of ``group`` ending after this time go to both sinks."""
        return self.until.get(group, EPOCH)

    def to_properties(self) -> dict[str, str]:
        properties = {"fingerprint": self.fingerprint}
        if self.start is not None:
            properties["start.timestamp"] = self.start.strftime(_ISO)
        for group, moment in sorted(self.until.items()):
            properties[f"until.{group}"] = moment.strftime(_ISO)
        return properties

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> "Cut":
        until = {match.group(1): _parse(value) for key, value in properties.items()
                 if (match := _UNTIL_KEY.fullmatch(key))}
        start = properties.get("start.timestamp")
        return cls(properties.get("fingerprint", ""), _parse(start) if start else None, until)


def key_problems(properties: Mapping[str, str]) -> list[str]:
    """Config validation of the replay group (its keys name feature groups, so they are not in KEYS)."""
    problems = []
    for key, value in sorted(properties.items()):
        if key in RECORD_KEYS:
            continue
        if key != "start.timestamp" and not _UNTIL_KEY.fullmatch(key):
            problems.append(f"property group '{GROUP}' key '{key}': unknown key (known: {', '.join(RECORD_KEYS)}, "
                            "start.timestamp, until.<feature>)")
        elif not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", value):
            problems.append(f"property group '{GROUP}' key '{key}': must be an ISO-8601 UTC time like "
                            f"2026-01-01T00:00:00Z, got '{value}'")
    return problems


@dataclass(frozen=True)
class Window:
    slide: timedelta
    size: timedelta


def plan(fingerprint: str, windows: Mapping[str, Window], existing: Mapping[str, Mapping[str, datetime | None]],
         now: datetime, future_skew: timedelta) -> Cut:
    """The cut-over for the new version's groups ``windows``; ``existing`` holds, for each group the
    old version also ran, the newest window end per sink (None: no marker there yet); a continuing
    group's cut is the older of the two.

    A new group starts at the CUT-OVER: the newest window end the old version emitted anywhere (how
    far it got in event time; ``now`` when nothing was emitted yet), rounded down to its slide. So
    does a continuing group that has not emitted a window yet (no marker in either sink: a 1-hour
    group in its first hour); its open window is recomputed whole from the start."""
    until: dict[str, datetime] = {}
    furthest = []
    for group in sorted(existing):
        missing = [sink for sink in SINKS if existing[group].get(sink) is None]
        if len(missing) == len(SINKS):
            continue
        if missing:
            raise ReplayError(f"feature group {group} has progress markers in PostgreSQL or Parquet but none in "
                              f"{missing[0]} yet, so what that sink already holds is unknown; retry after the next "
                              "checkpoint has committed the Parquet files (job.checkpoint.interval.seconds), or "
                              "start over (`run --fresh`; PostgreSQL upserts are idempotent, Parquet would then "
                              "hold the replayed windows twice)")
        until[group] = min(existing[group][sink] for sink in SINKS)
        furthest.append(max(existing[group][sink] for sink in SINKS))
    cut_over = max(furthest, default=now)
    for group, window in sorted(windows.items()):
        if group not in until:  # complete windows from the cut-over on; `backfill` fills its history
            until[group] = cut_over - (cut_over - EPOCH) % window.slide
    if not until:
        raise ReplayError("no feature group to replay")
    start = min(moment + windows[group].slide - windows[group].size for group, moment in until.items()) - future_skew
    return Cut(fingerprint, start, until)


def check_retention(start: datetime, retention_hours: int, stream: str, now: datetime | None = None) -> None:
    """Refuse a replay that would start before the oldest record the stream still keeps."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    needed = now - start
    # Some headroom: the new version starts reading a little after this check.
    if needed + timedelta(minutes=5) > timedelta(hours=retention_hours):
        raise ReplayError(
            f"the replay must read stream {stream} from {start.strftime(_ISO)} ({needed.total_seconds() / 3600:.1f} h "
            f"ago), but the stream keeps records for {retention_hours} h (RetentionPeriodHours); raise it "
            f"(`aws kinesis increase-stream-retention-period --stream-name {stream} --retention-period-hours 48`) "
            "or start over without replay (`run --fresh` / `start --snapshot none`)")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, _ISO)
