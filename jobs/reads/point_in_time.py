"""The one rule both feature reads use (online get_features, offline training_set): which window
describes a feature group "as of" a moment.

Rows alone cannot tell "the user had no events" from "that window is not written yet", so the
job records a PROGRESS MARKER per feature group and window: (window_start, window_end,
row_count), emitted once the watermark has passed the window's end (sinks.progress_view). The
marker can reach storage before all of the window's rows do (sinks flush independently), so a
window counts as complete only when storage holds at least ``row_count`` rows for it.

Each marker also says when the job emitted it and from when its window may be SERVED
(``served_from``: the emission plus the rows' flush time). A read as of a moment uses only windows
served by then, so a training set built later gives each label what serving gave at its time; "as
complete" (an explicit option) uses every marker there is, as if each window had been there at
its end (backfilled history, analysis after the fact).

Choice for a group at ``as_of`` (timestamps are naive UTC):
  1. candidate = min(as_of rounded down to the slide, the newest SERVED marker's window_end);
  2. a marker for the candidate: use the window if it is complete, else step back one slide;
  3. no marker, but newer ones exist: no user had events in that window; use it, every value
     neutral (markers of one group are written in window order by a single writer);
  4. older than the oldest marker kept (before the job ran, or pruned): unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

EPOCH = datetime(1970, 1, 1)
MAX_STEPS_BACK = 100  # incomplete windows in a row before giving up; 1-2 in practice


@dataclass(frozen=True)
class Marker:
    window_start: datetime
    window_end: datetime
    row_count: int


@dataclass(frozen=True)
class Choice:
    window_start: datetime
    window_end: datetime
    has_rows: bool        # False: no user had events in this window (every value is neutral)


def utc_naive(moment: datetime) -> datetime:
    """Storage keeps naive UTC wall-clock times; an aware time is converted, a naive one is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def aligned_end(as_of: datetime, slide: timedelta) -> datetime:
    """The latest window end at or before ``as_of`` (window ends are multiples of the slide)."""
    as_of = utc_naive(as_of)
    return as_of - (as_of - EPOCH) % slide


def choose_window(as_of: datetime, slide: timedelta, size: timedelta, first: Optional[datetime],
                  latest: Optional[datetime], marker_at: Callable[[datetime], Optional[Marker]],
                  is_complete: Callable[[Marker], bool]) -> Optional[Choice]:
    """Apply the rule; ``first`` is the oldest marker's end, ``latest`` the newest served by
    ``as_of`` (None: no such marker)."""
    if first is None or latest is None:
        return None
    candidate = min(aligned_end(as_of, slide), latest)
    for _ in range(MAX_STEPS_BACK):
        if candidate < first:
            return None
        marker = marker_at(candidate)
        if marker is None:
            return Choice(candidate - size, candidate, has_rows=False)
        if is_complete(marker):
            return Choice(marker.window_start, marker.window_end, has_rows=True)
        candidate -= slide
    return None
