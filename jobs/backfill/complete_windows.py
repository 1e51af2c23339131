"""Which windows a backfill writes: only those its input covers completely.

A backfill over part of the history (say some hours of the raw archive) computes its first and
last windows from part of their events: a window that began before the input's first record
misses the events that arrived earlier, and at the end of a bounded input Flink fires every open
window. Written to PostgreSQL, those partial rows would overwrite complete ones. So a backfill
writes only the windows [window_start, window_end) with

  window_start >= the first arrival_time in the input + events.future.skew.seconds   (raw archive)
                  the earliest valid event time + events.watermark.delay.seconds      (JSON lines)
  window_end   <= the newest valid event time - events.watermark.delay.seconds (the input's final watermark)

Why (records in arrival order, as the job reads them):
- Before: a valid record is dated at most the future skew after its arrival, so everything that
  arrived before the input is dated before the first bound. That covers the events the input
  lacks, identical re-sends of them (the backfill cannot know their txid was seen) and the
  watermark the stream had reached (it was below that bound, so a record late in the stream but
  counted by the backfill is dated before the bound too). JSON lines carry no arrival time: the
  bound assumes the input's earliest-dated valid event was on time in the stream (not late).
- After: an event that arrived after the input counts only if it is ahead of the watermark, which
  by then is at least the input's final watermark.
A re-send with a NEW event_time whose first delivery arrived before the input counts again: give
earlier archive as well and ``--from`` the time to write from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyflink.table import EnvironmentSettings, TableEnvironment

from jobs.definitions.config import Config
from jobs.definitions.feature_specs import FeatureSpec
from jobs.definitions.sql_catalog import Catalog
from jobs.streaming import environment, pipeline

EPOCH = datetime(1970, 1, 1)

# Over the `events` view (sql/views/events.sql): reject_reason IS NULL is the rule for a valid
# record, the same one that moves the watermark. Times as UTC wall clock, like the feature rows.
_SPAN_QUERY = """
SELECT CAST(MIN(arrival_time) AS TIMESTAMP(3)),
       CAST(MIN(event_time) FILTER (WHERE reject_reason IS NULL) AS TIMESTAMP(3)),
       CAST(MAX(event_time) FILTER (WHERE reject_reason IS NULL) AS TIMESTAMP(3))
FROM events
"""


@dataclass(frozen=True)
class InputSpan:
    """What the input covers; naive UTC datetimes, None when it has no (valid) records."""

    first_arrival: datetime | None
    first_event: datetime | None   # earliest valid event time
    last_event: datetime | None    # newest valid event time


@dataclass(frozen=True)
class WindowRange:
    """The windows written: window_start >= start and window_end <= end (None: no bound)."""

    start: datetime | None
    end: datetime | None

    def condition(self) -> str | None:
        """The SQL condition on a feature's rows, or None when every window is written."""
        terms = [f"{column} {op} TIMESTAMP '{moment.isoformat(sep=' ', timespec='milliseconds')}'"
                 for column, op, moment in (("window_start", ">=", self.start), ("window_end", "<=", self.end))
                 if moment is not None]
        return " AND ".join(terms) or None


def measure(catalog: Catalog) -> InputSpan:
    """One batch query over the prepared input (order does not matter for MIN and MAX).

    Call after environment.create(), which prepares the local JVM (UTC, Flink's log folder).
    """
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    for key, value in {"table.local-time-zone": "UTC", **environment.jar_option(),
                       "pipeline.name": "backfill-input-span", "rest.bind-port": environment.rest_port()}.items():
        t_env.get_config().set(key, value)
    pipeline.register_events(t_env, catalog)
    with t_env.execute_sql(_SPAN_QUERY).collect() as rows:
        first_arrival, first_event, last_event = next(rows)
    return InputSpan(first_arrival, first_event, last_event)


def complete_range(span: InputSpan, connector: str, config: Config, write_from: datetime | None) -> WindowRange:
    """The windows the input covers completely (see the module's docstring), from ``write_from``
    on if that is later."""
    delay = timedelta(seconds=config.get_int("events", "watermark.delay.seconds"))
    if span.last_event is None:
        return WindowRange(write_from, None)  # no valid event: no window at all
    if connector == "archive":
        start = span.first_arrival + timedelta(seconds=config.get_int("events", "future.skew.seconds"))
    else:
        start = span.first_event + delay
    return WindowRange(max(start, write_from) if write_from else start, span.last_event - delay)


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - EPOCH) % step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def _count(first: datetime, last: datetime, step: timedelta) -> int:
    """Window starts from ``first`` to ``last`` (both aligned to ``step``), inclusive."""
    return max(0, (last - first) // step + 1)


def report(spec: FeatureSpec, span: InputSpan, windows: WindowRange) -> str:
    """One line: the first and last window written and how many were skipped at each end (of the
    windows that could hold an input event)."""
    if span.last_event is None:
        return f"{spec.name}: no valid events in the input, no window written"
    slide, size = spec.slide, spec.size
    first_possible = _floor(span.first_event, slide) - size + slide   # the earliest window holding an event
    last_possible = _floor(span.last_event, slide)
    first = max(_ceil(windows.start, slide), first_possible) if windows.start else first_possible
    last = min(_floor(windows.end, slide) - size, last_possible) if windows.end else last_possible
    before = _count(first_possible, min(first - slide, last_possible), slide)
    after = _count(max(first, last + slide, first_possible), last_possible, slide)
    if last < first:
        return (f"{spec.name}: no window is complete in the input; skipped {before + after} "
                "(--include-partial-windows writes them)")
    line = f"{spec.name}: windows [{first}, {first + size}) to [{last}, {last + size}) written"
    if before or after:
        line += (f"; skipped {before} at the start and {after} at the end, covered by the input only in part "
                 "(--include-partial-windows writes them)")
    return line
