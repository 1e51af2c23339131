"""Fast, deterministic JSON-lines events for performance runs (not for correctness tests).

    from tests.perf.events import generate, write_events, cached_events
    path = cached_events(5_000_000)          # target/perf/events-<parameters>.jsonl, built once

Each line follows the event contract (sql/sources/events_parsed.sql):
  {"txid": "t1-42", "user_id": "u-7", "event_type": "A", "event_time": "2026-01-01T00:00:00.042Z", "amount": 12.5}
* event time advances ``events_per_second`` per second of event time from ``start``; each event
  is up to ``max_disorder_seconds`` (default 20 s, under the 30 s watermark delay) older than
  the newest before it, so nothing is late;
* ``event_time`` is ISO-8601 with milliseconds and Z (three in four) or epoch milliseconds;
* ``amount`` is a number (60%), null (20%) or absent (20%);
* ``duplicate_share`` of the lines are identical re-sends of one of the previous 300 lines (a
  retry moments later, so on time: the txid dedup drops it).
Random draws are vectorized with numpy per chunk; the same parameters give the same lines.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

PERF_DIR = Path(__file__).resolve().parents[2] / "target" / "perf"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHUNK = 200_000  # lines drawn per numpy call; part of the determinism (same chunking, same lines)
RESEND_WINDOW = 300  # a re-send copies one of this many previous lines


def _chunks(n_events: int, users: int, duplicate_share: float, event_types: Sequence[str], seed: int,
            start: datetime | None, events_per_second: float, max_disorder_seconds: float,
            epoch_share: float) -> Iterator[list[str]]:
    rng = np.random.default_rng(seed)
    start_ms = int((start or START).timestamp() * 1000)
    seconds: dict[int, str] = {}  # epoch second -> "YYYY-MM-DDTHH:MM:SS" (time is mostly monotonic)
    recent: list[str] = []
    originals = 0
    for first in range(0, n_events, CHUNK):
        size = min(CHUNK, n_events - first)
        position = np.arange(first, first + size)
        # Python lists, not numpy arrays: indexing them in the loop below is several times faster.
        event_ms = (start_ms + position * (1000 / events_per_second)
                    - rng.uniform(0, max_disorder_seconds * 1000, size)).astype(np.int64).tolist()
        user = rng.integers(0, users, size).tolist()
        kind = rng.integers(0, len(event_types), size).tolist()
        amount_style = rng.random(size).tolist()
        amount = np.round(rng.uniform(0, 200, size), 2).tolist()
        epoch = (rng.random(size) < epoch_share).tolist()
        resend = (rng.random(size) < duplicate_share).tolist()
        back = rng.integers(1, RESEND_WINDOW + 1, size).tolist()
        lines: list[str] = []
        for i in range(size):
            if resend[i] and len(recent) + len(lines) > 0:
                pool = len(recent) + len(lines)
                index = pool - min(back[i], pool)
                lines.append(recent[index] if index < len(recent) else lines[index - len(recent)])
                continue
            ms = event_ms[i]
            if epoch[i]:
                when = str(ms)
            else:
                second = ms // 1000
                prefix = seconds.get(second)
                if prefix is None:
                    prefix = seconds[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                when = f'"{prefix}.{ms % 1000:03d}Z"'
            style = amount_style[i]
            tail = f', "amount": {amount[i]!r}}}' if style < 0.6 else (', "amount": null}' if style < 0.8 else "}")
            lines.append(f'{{"txid": "t{seed}-{originals}", "user_id": "u-{user[i]}", '
                         f'"event_type": "{event_types[kind[i]]}", "event_time": {when}{tail}')
            originals += 1
        recent = (recent + lines)[-RESEND_WINDOW:]
        if len(seconds) > 10_000:
            seconds.clear()
        yield lines


def generate(n_events: int, users: int = 100_000, duplicate_share: float = 0.10,
             event_types: Sequence[str] = ("A", "B", "C", "D"), seed: int = 1, start: datetime | None = None,
             events_per_second: float = 1000.0, max_disorder_seconds: float = 20.0,
             epoch_share: float = 0.25) -> Iterator[str]:
    """``n_events`` JSON lines (re-sends included), without line breaks."""
    for chunk in _chunks(n_events, users, duplicate_share, tuple(event_types), seed, start,
                         events_per_second, max_disorder_seconds, epoch_share):
        yield from chunk


def write_events(path: Path, n_events: int, **parameters: object) -> Path:
    """Write ``generate(n_events, **parameters)`` to ``path`` (atomically: a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with partial.open("w", encoding="utf-8") as out:
        for chunk in _chunks(n_events, **_defaults(parameters)):
            out.write("\n".join(chunk))
            out.write("\n")
    partial.replace(path)
    return path


def cached_events(n_events: int, **parameters: object) -> Path:
    """The events file for these parameters under target/perf/, written on first use."""
    resolved = _defaults(parameters)
    key = hashlib.sha256(repr((n_events, sorted(resolved.items()))).encode()).hexdigest()[:12]
    path = PERF_DIR / f"events-{n_events}-{key}.jsonl"
    return path if path.is_file() else write_events(path, n_events, **parameters)


def _defaults(parameters: dict[str, object]) -> dict[str, object]:
    """generate()'s keyword defaults overridden by ``parameters`` (unknown names are errors)."""
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()
                if p.default is not inspect.Parameter.empty}
    unknown = set(parameters) - set(defaults)
    if unknown:
        raise TypeError(f"unknown event parameter(s): {', '.join(sorted(unknown))}")
    defaults.update(parameters)
    defaults["event_types"] = tuple(defaults["event_types"])
    return defaults


def distinct_txids(path: Path) -> int:
    """How many different txids a generated file holds: txids are numbered in order, and a
    re-send copies one of the previous RESEND_WINDOW lines, so the last lines hold the highest."""
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - 200 * (RESEND_WINDOW + 1)))
        tail = file.read().decode("utf-8", errors="replace").splitlines()[1:]
    return 1 + max(int(line.split('"txid": "', 1)[1].split('"', 1)[0].rsplit("-", 1)[1]) for line in tail)
