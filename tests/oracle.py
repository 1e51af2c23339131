"""An independent Python model of what the job must output, for comparing feature values.

Written from the event contract and Flink's documented window semantics, sharing no code with the
job. Records are taken in arrival order, as the job reads them at parallelism 1:
  * a record is valid per the contract, else quarantined with a reason;
  * the watermark is the highest valid event time seen so far minus the delay, where a record
    dated after its own arrival counts as of its arrival (a fast client clock must not move it
    ahead of what has arrived; invalid records never move it); a valid record whose time is at or
    behind the watermark before it is late: it counts in no feature and is kept in the late output;
  * of the on-time records, the first delivery of a txid wins; later ones are dropped.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone  # noqa: F401 - tests use oracle.timedelta

ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Event:
    txid: str
    user_id: str
    event_type: str
    amount: float | None
    event_time: datetime  # UTC, millisecond precision


def _text(value: object) -> str | None:
    """Scalars as the job reads them (JSON_VALUE gives text); objects, arrays and null are absent."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def parse_time(value: object) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    if re.fullmatch(r"[0-9]{1,15}", text):
        return EPOCH + timedelta(milliseconds=int(text))
    match = ISO.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    except ValueError:
        return None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return moment + timedelta(milliseconds=millis)


def classify(line: str, arrival: datetime, future_skew: timedelta) -> Event | str:
    """The valid event, or the reason it is quarantined."""
    try:
        record = json.loads(line)
    except ValueError:
        return "not a JSON object"
    if not isinstance(record, dict):
        return "not a JSON object"
    ids = {}
    for name in ("txid", "user_id", "event_type"):
        ids[name] = _text(record.get(name))
        if not ids[name]:
            return f"missing or empty {name}"
    if _text(record.get("event_time")) is None:
        return "missing event_time"
    amount_text = _text(record.get("amount"))
    amount = None
    if amount_text is not None:
        try:
            amount = float(amount_text)
        except ValueError:
            return "amount is not a number"
    event_time = parse_time(record.get("event_time"))
    if event_time is None:
        return "unparseable event_time"
    if event_time > arrival + future_skew:
        return f"event_time more than {int(future_skew.total_seconds())} s after arrival"
    return Event(ids["txid"], ids["user_id"], ids["event_type"], amount, event_time)


@dataclass
class Outcome:
    """What the job must produce for a sequence of records."""

    counted: list[Event] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (payload, reason)
    late: list[tuple[str, datetime]] = field(default_factory=list)  # (payload, watermark it missed)
    duplicates: int = 0


def replay(lines: list[str], arrival: datetime | list[datetime], watermark_delay: timedelta,
           future_skew: timedelta = timedelta(minutes=5)) -> Outcome:
    """``arrival``: one time for all records (a file), or each record's own (Kinesis)."""
    outcome = Outcome()
    seen: set[str] = set()
    max_time: datetime | None = None
    arrivals = arrival if isinstance(arrival, list) else [arrival] * len(lines)
    for line, arrived in zip(lines, arrivals, strict=True):
        result = classify(line, arrived, future_skew)
        if isinstance(result, str):
            outcome.quarantined.append((line, result))
            continue
        watermark = None if max_time is None else max_time - watermark_delay
        if watermark is not None and result.event_time <= watermark:
            outcome.late.append((line, watermark))
        elif result.txid in seen:
            outcome.duplicates += 1
        else:
            seen.add(result.txid)
            outcome.counted.append(result)
        progress = min(result.event_time, arrived)
        max_time = progress if max_time is None else max(max_time, progress)
    return outcome


def _floor(moment: datetime, step: timedelta) -> datetime:
    offset = (moment - EPOCH) % step
    return moment - offset


def _windows(event_time: datetime, size: timedelta, slide: timedelta) -> list[tuple[datetime, datetime]]:
    last_start = _floor(event_time, slide)
    windows = []
    start = last_start
    while start > event_time - size:
        windows.append((start, start + size))
        start -= slide
    return windows


def window_features(outcome: Outcome, size: timedelta, slide: timedelta) -> dict[tuple[str, datetime, datetime], list[Event]]:
    """Events per (user_id, window_start, window_end), naive UTC datetimes like the Parquet output."""
    groups: dict[tuple[str, datetime, datetime], list[Event]] = defaultdict(list)
    for event in outcome.counted:
        for start, end in _windows(event.event_time, size, slide):
            groups[(event.user_id, start.replace(tzinfo=None), end.replace(tzinfo=None))].append(event)
    return groups


def _activity(events: list[Event]) -> dict:
    """The columns both shipped groups share."""
    amounts = [e.amount for e in events if e.amount is not None]
    return {
        "event_count": len(events),
        "a_event_count": sum(1 for e in events if e.event_type == "A"),
        "amount_sum": sum(amounts) if amounts else 0.0,
    }


def user_activity_5m(outcome: Outcome) -> dict[tuple, dict]:
    return {key: _activity(events)
            for key, events in window_features(outcome, timedelta(minutes=5), timedelta(minutes=1)).items()}


def user_activity_1h(outcome: Outcome) -> dict[tuple, dict]:
    rows = {}
    for key, events in window_features(outcome, timedelta(hours=1), timedelta(hours=1)).items():
        amounts = [e.amount for e in events if e.amount is not None]
        rows[key] = {
            **_activity(events),
            "amount_max": max(amounts) if amounts else None,
            "distinct_event_types": len({e.event_type for e in events}),
        }
    return rows


def spend_bucket(amount: float | None) -> str:
    """udfs/spend_bucket.py's documented thresholds, written here independently."""
    return "none" if amount is None else "small" if amount < 10 else "medium" if amount < 100 else "large"


def user_spend_buckets_1h(outcome: Outcome) -> dict[tuple, dict]:
    """sql/examples/user_spend_buckets_1h.sql (the example that calls a Python UDF)."""
    return {key: {f"{name}_spend_count": sum(1 for e in events if spend_bucket(e.amount) == name)
                  for name in ("small", "medium", "large")}
            for key, events in window_features(outcome, timedelta(hours=1), timedelta(hours=1)).items()}


def features_as_of(rows: dict[tuple, dict], user_id: str, moment: datetime, size: timedelta, slide: timedelta,
                   neutral: dict) -> tuple[datetime | None, dict | None]:
    """What a read as of ``moment`` must answer, knowing every emitted row: the window ending at
    min(moment rounded down to the slide, the newest window end emitted); the user's row there,
    else ``neutral``. (None, None) before the first emitted window. Naive UTC times."""
    ends = sorted({end for _, _, end in rows})
    if not ends:
        return None, None
    end = min(_floor(moment.replace(tzinfo=timezone.utc), slide).replace(tzinfo=None), ends[-1])
    if end < ends[0]:
        return None, None
    return end, rows.get((user_id, end - size, end), neutral)
