"""The two shipped features computed with plain Python dicts: the baselines' shared core.

Written for speed and kept independent of the job (no SQL, no Flink) and of tests/oracle.py (its
regexes and datetimes are too slow for a baseline); tests/perf/test_baselines.py checks it against
the oracle. Times are integer epoch milliseconds throughout; datetimes only for output rows.

Semantics follow the job: a record whose event time is at or behind the watermark (highest event
time seen minus the delay) is late and counts nowhere; of the rest, the first delivery of a txid
wins. A window [start, end) is final, and emitted, once the watermark reaches end - 1 ms.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, NamedTuple

HOP_SIZE_MS = 5 * 60_000
HOP_SLIDE_MS = 60_000
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1)  # naive UTC, like the PostgreSQL timestamp(3) columns


class Event(NamedTuple):
    txid: str
    user_id: str
    event_type: str
    amount: float | None
    time_ms: int


def _text(value: Any) -> str | None:
    """A scalar as text, like the job's JSON_VALUE; objects, arrays and null are absent."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds; events share few seconds


def parse_time_ms(value: Any) -> int | None:
    """Epoch milliseconds (a number or digits), or ISO-8601 UTC ending in Z with an optional
    fraction (digits past milliseconds are cut off); None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < 10**15 else None
    if not isinstance(value, str):
        return None
    if value.isdigit() and len(value) <= 15:
        return int(value)
    if len(value) < 20 or value[-1] != "Z" or value[10] != "T":
        return None
    prefix, fraction = value[:19], value[19:-1]
    if fraction and (fraction[0] != "." or not fraction[1:].isdigit() or len(fraction) > 10):
        return None
    seconds = _SECONDS.get(prefix)
    if seconds is None:
        try:
            seconds = calendar.timegm(datetime.strptime(prefix, "%Y-%m-%dT%H:%M:%S").timetuple())
        except ValueError:
            return None
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        _SECONDS[prefix] = seconds
    return seconds * 1000 + int(fraction[1:4].ljust(3, "0") if fraction else 0)


def parse(payload: bytes | str) -> Event | None:
    """The event in one Kinesis record, or None if it breaks the event contract."""
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    txid, user_id, event_type = _text(record.get("txid")), _text(record.get("user_id")), _text(record.get("event_type"))
    time_ms = parse_time_ms(record.get("event_time"))
    if not txid or not user_id or not event_type or time_ms is None:
        return None
    raw_amount = record.get("amount")
    if raw_amount is None:
        amount = None
    elif isinstance(raw_amount, (int, float)) and not isinstance(raw_amount, bool):
        amount = float(raw_amount)
    else:
        try:
            amount = float(_text(raw_amount) or "")
        except ValueError:
            return None
    return Event(txid, user_id, event_type, amount, time_ms)


def hop_window_ends(time_ms: int) -> range:
    """Ends of the five 5-minute windows (slide 1 minute) holding this time, earliest first."""
    first_end = time_ms - time_ms % HOP_SLIDE_MS + HOP_SLIDE_MS
    return range(first_end, first_end + HOP_SIZE_MS, HOP_SLIDE_MS)


def hour_window_end(time_ms: int) -> int:
    return time_ms - time_ms % HOUR_MS + HOUR_MS


def as_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# Output rows, in the PostgreSQL tables' column order.
Row5m = tuple[str, datetime, datetime, int, int, float]
Row1h = tuple[str, datetime, datetime, int, int, float, float | None, int]


@dataclass
class WindowedFeatures:
    """Watermark, txid dedup and open windows; ``add`` records, then ``pop_final`` emits."""

    delay_ms: int
    max_time_ms: int | None = None
    late: int = 0
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.seen: set[str] = set()
        # window end -> user -> [count, A count, amount sum]
        self.hop: dict[int, dict[str, list[Any]]] = {}
        # window end -> user -> [count, A count, amount sum, amount max, event types]
        self.hour: dict[int, dict[str, list[Any]]] = {}

    @property
    def watermark_ms(self) -> int | None:
        return None if self.max_time_ms is None else self.max_time_ms - self.delay_ms

    def add(self, event: Event) -> bool:
        """True if the event counts (on time and a first delivery)."""
        watermark = self.watermark_ms
        time_ms = event.time_ms
        if self.max_time_ms is None or time_ms > self.max_time_ms:
            self.max_time_ms = time_ms
        if watermark is not None and time_ms <= watermark:
            self.late += 1
            return False
        if event.txid in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(event.txid)
        is_a = 1 if event.event_type == "A" else 0
        amount = event.amount
        for end in hop_window_ends(time_ms):
            users = self.hop.get(end)
            if users is None:
                users = self.hop[end] = {}
            acc = users.get(event.user_id)
            if acc is None:
                users[event.user_id] = [1, is_a, amount or 0.0]
            else:
                acc[0] += 1
                acc[1] += is_a
                if amount is not None:
                    acc[2] += amount
        end = hour_window_end(time_ms)
        users = self.hour.get(end)
        if users is None:
            users = self.hour[end] = {}
        acc = users.get(event.user_id)
        if acc is None:
            users[event.user_id] = [1, is_a, amount or 0.0, amount, {event.event_type}]
        else:
            acc[0] += 1
            acc[1] += is_a
            if amount is not None:
                acc[2] += amount
                acc[3] = amount if acc[3] is None else max(acc[3], amount)
            acc[4].add(event.event_type)
        return True

    def pop_final(self, flush_all: bool = False) -> tuple[list[Row5m], list[Row1h]]:
        """Rows of every window the watermark has closed (all open windows if ``flush_all``)."""
        watermark = self.watermark_ms
        if watermark is None:
            return [], []

        def closed(ends: Iterable[int]) -> list[int]:
            return sorted(end for end in ends if flush_all or end - 1 <= watermark)

        rows_5m: list[Row5m] = []
        for end in closed(self.hop):
            start_dt, end_dt = as_datetime(end - HOP_SIZE_MS), as_datetime(end)
            rows_5m += [(user, start_dt, end_dt, acc[0], acc[1], acc[2]) for user, acc in self.hop.pop(end).items()]
        rows_1h: list[Row1h] = []
        for end in closed(self.hour):
            start_dt, end_dt = as_datetime(end - HOUR_MS), as_datetime(end)
            rows_1h += [(user, start_dt, end_dt, acc[0], acc[1], acc[2], acc[3], len(acc[4]))
                        for user, acc in self.hour.pop(end).items()]
        return rows_5m, rows_1h
