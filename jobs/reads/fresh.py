"""The one rule both fresh reads use (online get_features(fresh=True), offline training_set(fresh=True)).

A fresh value as of ``t`` answers for the window that ends at t, from the group's slices
(jobs/definitions/fresh_slices.py): the slice t falls in (open, counted so far) and the size/slide - 1
complete slices before it. So it covers the events dated from span_start(t) = t rounded down to
the slide, minus size, plus slide, up to t (and any already received that are dated later in
the open slice: a fast client clock). A HOP window value covers exactly size; a fresh value
covers between size - slide and size, always the newest events.

Per slice, the version used is the newest served by t (``served_from`` <= t, ties: the higher
version). A user without any such slice gets the group's neutral values. The group's fresh
values are known at t once the job has shown it ran by then: a window of any group was served by
t, or some user's slice in the span was; otherwise they are None (before the job ran, or pruned
history), as the window reads'.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any, Iterable, Optional

from jobs.definitions.fresh_slices import FreshSpec
from jobs.reads.point_in_time import aligned_end


def span_start(as_of: datetime, fresh: FreshSpec) -> datetime:
    """The first slice start a fresh value at ``as_of`` covers."""
    return aligned_end(as_of, fresh.slice_width) - fresh.size + fresh.slice_width


def slice_starts(as_of: datetime, fresh: FreshSpec) -> list[datetime]:
    first, count = span_start(as_of, fresh), fresh.size // fresh.slice_width
    return [first + n * fresh.slice_width for n in range(count)]


def combine(fresh: FreshSpec, slices: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The feature values of the chosen slice versions (each a dict of the stored columns)."""
    slices = list(slices)
    if not slices:
        return dict(fresh.neutral)
    values = {}
    for column in fresh.columns:
        parts = [[row[stored] for row in slices if row[stored] is not None] for stored in column.stored]
        if column.function == "AVG":
            total, count = sum(parts[0]), sum(parts[1])
            value = total / count if count else None
        elif column.function in ("COUNT", "SUM"):
            value = sum(parts[0]) if parts[0] else (0 if column.function == "COUNT" else None)
        else:
            value = (min if column.function == "MIN" else max)(parts[0]) if parts[0] else None
        values[column.name] = column.default if value is None else value
    return values


class SliceVersions:
    """Every stored version of some slices, for choosing the newest served by a moment."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, datetime], list[tuple[datetime, int, dict[str, Any]]]] = {}
        self._first_served: dict[datetime, datetime] = {}  # slice start -> its first version's served_from, any user

    def add(self, user: str, window_start: datetime, served_from: datetime, version: int, row: dict[str, Any]) -> None:
        self._versions.setdefault((user, window_start), []).append((served_from, version, row))
        self._first_served[window_start] = min(served_from, self._first_served.get(window_start, served_from))

    def any_served(self, fresh: FreshSpec, as_of: datetime) -> bool:
        """Whether some user's slice in the span at ``as_of`` was served by then (versions of every user added)."""
        return any(self._first_served.get(start, datetime.max) <= as_of for start in slice_starts(as_of, fresh))

    def sort(self) -> None:
        for versions in self._versions.values():
            versions.sort(key=lambda entry: entry[:2])

    def served(self, user: str, window_start: datetime, as_of: datetime) -> Optional[dict[str, Any]]:
        versions = self._versions.get((user, window_start), [])
        position = bisect.bisect_right(versions, as_of, key=lambda entry: entry[0])
        return versions[position - 1][2] if position else None

    def value(self, fresh: FreshSpec, user: str, as_of: datetime) -> dict[str, Any]:
        chosen = (self.served(user, start, as_of) for start in slice_starts(as_of, fresh))
        return combine(fresh, (row for row in chosen if row is not None))
