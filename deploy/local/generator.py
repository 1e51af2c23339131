"""Write realistic sample events (JSON lines) with the mess a real stream carries.

Contract: {"txid": "t-1", "user_id": "u-42", "event_type": "A",
           "event_time": "2026-01-01T00:00:05.123Z", "amount": 12.5}

What makes it realistic, and what the job must survive:
- a few users are far more active than most (Zipf-like), event types A..D are not equally common;
- ``amount`` is sometimes null or missing;
- ``event_time`` comes as ISO with millis, ISO without millis, or integer epoch millis;
- out of order: each line's place in the file is its event time plus up to ``out_of_order_seconds``
  of delivery delay, so no event arrives more than that bound behind the newest one before it;
- duplicates: identical re-sends (same bytes) placed up to 30 s after the original;
- malformed lines of four kinds: not JSON, no txid, empty user_id, unparseable event_time.
The output is a pure function of the arguments: same seed and start, same bytes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

EVENT_TYPES = ("A", "B", "C", "D")
EVENT_TYPE_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
TIME_FORMATS = ("iso_millis", "iso_seconds", "epoch_millis")
TIME_FORMAT_WEIGHTS = (0.6, 0.25, 0.15)
MALFORMED_KINDS = ("not_json", "missing_txid", "empty_user_id", "bad_event_time")
DUPLICATE_MAX_DELAY_S = 30.0


@dataclass(frozen=True)
class GeneratorOptions:
    users: int = 50
    events: int = 2000
    duplicates: float = 0.1        # share of events re-sent once more
    out_of_order_seconds: float = 20.0
    malformed: float = 0.01        # malformed lines, as a share of events
    seed: int = 42
    start: datetime | None = None  # None: the span ends now, so a live demo shows fresh windows
    span_seconds: float = 600.0

    def validate(self) -> None:
        if self.users < 1 or self.events < 0 or self.span_seconds <= 0:
            raise ValueError("need users >= 1, events >= 0 and span_seconds > 0")
        for name in ("duplicates", "malformed"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1")
        if self.out_of_order_seconds < 0:
            raise ValueError("out_of_order_seconds must be >= 0")


@dataclass
class GeneratorSummary:
    lines: int = 0
    events: int = 0
    duplicates: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    first_event_time: str = ""
    last_event_time: str = ""

    def describe(self) -> str:
        bad = ", ".join(f"{k}={v}" for k, v in sorted(self.malformed.items())) or "none"
        return (f"{self.lines} lines: {self.events} events, {self.duplicates} duplicates, malformed: {bad}; "
                f"event time {self.first_event_time} .. {self.last_event_time}")


def format_time(epoch_ms: int, style: str) -> str | int:
    if style == "epoch_millis":
        return epoch_ms
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    if style == "iso_seconds":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _iso(epoch_ms: int) -> str:
    return str(format_time(epoch_ms, "iso_millis"))


def _amount(rng: random.Random) -> tuple[bool, float | None]:
    """(present, value): mostly a positive price with cents, sometimes null, sometimes absent."""
    roll = rng.random()
    if roll < 0.05:
        return False, None
    if roll < 0.10:
        return True, None
    return True, round(rng.lognormvariate(3.0, 1.0), 2)


def _event(rng: random.Random, txid: str, user: str, epoch_ms: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "txid": txid,
        "user_id": user,
        "event_type": rng.choices(EVENT_TYPES, EVENT_TYPE_WEIGHTS)[0],
        "event_time": format_time(epoch_ms, rng.choices(TIME_FORMATS, TIME_FORMAT_WEIGHTS)[0]),
    }
    present, amount = _amount(rng)
    if present:
        event["amount"] = amount
    return event


def _malformed(rng: random.Random, kind: str, n: int, user: str, epoch_ms: int) -> str:
    event = _event(rng, f"t-bad-{n}", user, epoch_ms)
    if kind == "not_json":
        text = json.dumps(event)
        return rng.choice([text[: len(text) // 2], f"ERROR malformed payload #{n}", "{'txid': 'single-quoted'}"])
    if kind == "missing_txid":
        del event["txid"]
    elif kind == "empty_user_id":
        event["user_id"] = ""
    else:
        event["event_time"] = rng.choice(["not-a-time", "2026-13-45T25:61:00Z", "yesterday", "12:30"])
    return json.dumps(event)


def generate(options: GeneratorOptions, out: Path) -> GeneratorSummary:
    options.validate()
    rng = random.Random(options.seed)
    start = options.start or datetime.now(timezone.utc) - timedelta(seconds=options.span_seconds)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start_ms = int(start.timestamp() * 1000)
    span_ms = int(options.span_seconds * 1000)
    users = [f"u-{i}" for i in range(1, options.users + 1)]
    user_weights = [1.0 / (rank ** 1.1) for rank in range(1, options.users + 1)]
    delay_ms = int(options.out_of_order_seconds * 1000)

    # (arrival_ms, tiebreak, line): sorting by arrival gives the file order.
    lines: list[tuple[int, int, str]] = []
    event_times = sorted(start_ms + rng.randrange(span_ms) for _ in range(options.events))
    originals: list[tuple[int, str]] = []
    for n, epoch_ms in enumerate(event_times, start=1):
        line = json.dumps(_event(rng, f"t-{n}", rng.choices(users, user_weights)[0], epoch_ms))
        arrival = epoch_ms + (rng.randrange(delay_ms + 1) if delay_ms else 0)
        originals.append((arrival, line))
        lines.append((arrival, len(lines), line))

    summary = GeneratorSummary(events=options.events)
    if event_times:
        summary.first_event_time, summary.last_event_time = _iso(event_times[0]), _iso(event_times[-1])

    duplicate_count = min(len(originals), round(options.events * options.duplicates))
    for arrival, line in rng.sample(originals, duplicate_count):
        resend = arrival + rng.randrange(500, int(DUPLICATE_MAX_DELAY_S * 1000) + 1)
        lines.append((resend, len(lines), line))
    summary.duplicates = duplicate_count

    for n in range(1, round(options.events * options.malformed) + 1):
        kind = MALFORMED_KINDS[(n - 1) % len(MALFORMED_KINDS)]  # every kind shows up, in turn
        epoch_ms = start_ms + rng.randrange(span_ms)
        lines.append((epoch_ms, len(lines), _malformed(rng, kind, n, rng.choice(users), epoch_ms)))
        summary.malformed[kind] += 1

    lines.sort()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as sink:
        for _, _, line in lines:
            sink.write(line + "\n")
    summary.lines = len(lines)
    return summary
