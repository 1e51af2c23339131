"""Fresh slices: each feature group's windows, cut into slices that are kept up to date while open.

A HOP window of size S and slide L is S/L consecutive SLICES of width L (a TUMBLE window is one
slice). The job keeps, per user and slice, the feature's aggregates over the events seen so far
and writes a new VERSION every ``features.fresh.interval.seconds`` while events arrive for it:
  deltas      one processing-time TUMBLE of that interval: each user's slices' aggregates over
              the events that arrived in it (insert-only);
  versions    an OVER aggregation adds each delta to the slice's earlier ones: version n is the
              slice's aggregates over everything seen so far, still insert-only (so it can go
              to Parquet), written at the end of its interval (``written_at``).
Both sinks get every version: PostgreSQL table <name>__fresh upserts it keyed by (user, slice,
version parity), so the table holds each slice's last two versions; Parquet <name>__fresh/ keeps
them all (the changelog training sets read). A read as of a moment uses, per slice, the newest
version served by then (``served_from`` = written_at + the fresh sink's flush time):
jobs/reads/fresh.py, one rule online and offline.

Derived from the feature's own SELECT: each value column must be an aggregate that slices
combine, COUNT, SUM, MIN, MAX or AVG (kept as a sum and a count), each optionally with
FILTER (WHERE ...) and inside COALESCE(..., <literal>). Anything else (COUNT(DISTINCT ...), UDF
aggregates, arithmetic over aggregates, HAVING) refuses fresh reads for that group, naming file
and column; its window reads are unaffected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from jobs.definitions.config import Config
from jobs.definitions.feature_specs import (AFTER_GROUP_BY, GROUP_BY, WINDOW_CALL, call_arguments, literal, normalized,
                                            select_items, spec_of, split_top_level)
from jobs.definitions.sql_catalog import Feature, load_features, parenthesized, strip_comments, top_level_code

TABLE_SUFFIX = "__fresh"  # PostgreSQL table and Parquet folder of a group's slice versions
KEY = ("user_id", "window_end", "window_start", "slot")  # window_* are the slice's bounds
FIXED_COLUMNS = ("user_id", "window_start", "window_end", "slot", "version", "written_at", "served_from")
# The fresh PostgreSQL sink flushes this often; a version is served once it has surely landed.
FLUSH_INTERVAL_MS = 200
SERVED_DELAY_SECONDS = 1
_COMBINABLE = ("COUNT", "SUM", "MIN", "MAX", "AVG")
_ONE_DAY = timedelta(days=1)


class FreshReadsUnsupported(ValueError):
    """A feature group whose values cannot be combined from slices; the message names file and column."""


@dataclass(frozen=True)
class FreshColumn:
    """A feature column as slices store and combine it."""

    name: str
    function: str        # COUNT, SUM, MIN, MAX or AVG
    stored: tuple[str, ...]  # its columns in the slice table (AVG: <name>__sum, <name>__count)
    default: object      # COALESCE's literal, applied after combining (None: no COALESCE)


@dataclass(frozen=True)
class FreshSpec:
    name: str
    slice_width: timedelta  # the slide (TUMBLE: the size)
    size: timedelta
    columns: tuple[FreshColumn, ...]
    neutral: dict[str, object]  # a user without any slice in the span: the window reads' neutral values
    partials: tuple[tuple[str, str, str], ...]  # (stored column, aggregate over one interval, how versions add up)
    deltas_from: tuple[str, str]  # FROM ... of the feature, before and after its window call
    user_expression: str      # the SELECT's user_id expression and its GROUP BY expression
    user_group: str
    source: str               # the table the feature's window reads, and its time column
    time_column: str

    @property
    def table(self) -> str:
        return self.name + TABLE_SUFFIX

    @property
    def stored(self) -> list[str]:
        """The value columns of the slice table."""
        return [stored for column in self.columns for stored in column.stored]


def plan(feature: Feature) -> FreshSpec:
    """How ``feature`` is kept fresh, or FreshReadsUnsupported saying why it cannot be."""
    spec = spec_of(feature)
    statement = feature.query
    path, where = statement.path, statement.where()

    def refuse(reason: str) -> FreshReadsUnsupported:
        return FreshReadsUnsupported(f"{where}: feature '{feature.name}' has no fresh reads: {reason}; "
                                     "its window reads work as before")

    if spec.extra_key:
        raise refuse(f"it has more than one row per user and window (key columns {', '.join(spec.extra_key)})")
    if _ONE_DAY % spec.slide:
        raise refuse(f"its slide ({spec.slide}) does not divide a day, so its slices cannot be aligned")
    code = strip_comments(statement.text)
    top = top_level_code(code, path)
    select = re.search(r"(?i)\bSELECT\b", top)
    from_ = re.search(r"(?i)\bFROM\b", top[select.end():])
    group_by = GROUP_BY.search(top)
    after = AFTER_GROUP_BY.search(top, group_by.end())
    if after:
        raise refuse(f"its {after.group(1).upper()} clause cannot be applied to slices")
    from_text = code[select.end() + from_.start():group_by.start()]
    call = WINDOW_CALL.search(from_text)
    open_paren, close_paren = parenthesized(from_text, path, call.end() - 1)
    arguments = split_top_level(from_text[open_paren + 1:close_paren], path)
    data = re.fullmatch(r"(?is)(?:DATA\s*=>\s*)?TABLE\s+(`?[\w.]+`?)", arguments[0])
    time_column = re.fullmatch(r"(?is)(?:TIMECOL\s*=>\s*)?DESCRIPTOR\s*\(\s*(`?\w+`?)\s*\)", arguments[1])
    if not data or not time_column:
        raise refuse("its window must read TABLE <name>, DESCRIPTOR(<time column>) as its first two arguments")
    outside = from_text[:call.start()] + from_text[close_paren + 1:]
    if re.search(r"(?i)\bwindow_(start|end|time)\b", outside):
        raise refuse("its FROM/WHERE uses window_start/window_end, which slices do not have")

    items = dict(select_items(statement.text, path, statement.first_line))
    grouped = split_top_level(code[group_by.end():], path)
    user_group = [g for g in grouped if normalized(g) not in (("window_start",), ("window_end",))]
    columns, partials = [], []
    for name in spec.columns:
        if name in FIXED_COLUMNS:
            raise refuse(f"column {name} has a name the slice table uses itself")
        column, column_partials = _column(name, items[name], path, refuse)
        columns.append(column)
        partials += column_partials
    return FreshSpec(
        name=feature.name, slice_width=spec.slide, size=spec.size, columns=tuple(columns), neutral=dict(spec.neutral),
        partials=tuple(partials), deltas_from=(from_text[:call.start()], from_text[close_paren + 1:]),
        user_expression=items["user_id"], user_group=user_group[0], source=data.group(1),
        time_column=time_column.group(1),
    )


def _column(name: str, expression: str, path: Path, refuse) -> tuple[FreshColumn, list[tuple[str, str, str]]]:
    text, default = expression.strip(), None
    if top_level_code(text, path).upper().split() == ["COALESCE"]:
        arguments = split_top_level(call_arguments(text, text.index("("), path), path)
        default = literal(arguments[-1]) if len(arguments) == 2 else None
        if default is None:
            raise refuse(f"column {name} ({expression}): only COALESCE(<aggregate>, <literal>) can be combined")
        text = arguments[0]
    shape = top_level_code(text, path).upper().split()
    function = shape[0] if shape else ""
    if function not in _COMBINABLE or shape[1:] not in ([], ["FILTER"]):
        raise refuse(f"column {name} ({expression}) cannot be combined from slices (fresh reads combine "
                     f"{', '.join(_COMBINABLE)}, each with an optional FILTER and COALESCE(..., <literal>))")
    open_paren = text.index("(")
    close_paren = parenthesized(text, path, open_paren)[1]
    argument, rest = text[open_paren + 1:close_paren].strip(), text[close_paren + 1:].strip()
    if re.match(r"(?i)DISTINCT\b", argument):
        raise refuse(f"column {name} ({expression}): a DISTINCT aggregate cannot be combined from slices")
    if function == "AVG":
        stored = (f"{name}__sum", f"{name}__count")
        partials = [(stored[0], f"SUM(CAST({argument} AS DOUBLE)) {rest}", "SUM"),
                    (stored[1], f"COUNT({argument}) {rest}", "SUM")]
    else:
        stored = (name,)
        partials = [(name, f"{function}({argument}) {rest}", "SUM" if function == "COUNT" else function)]
    return FreshColumn(name, function, stored, default), partials


def _slice_start(time_column: str, width: timedelta) -> str:
    """The start of the slice ``time_column`` falls in: slices are aligned to the epoch like the
    window TVFs' (a width dividing a day is aligned to each UTC midnight, which is the same)."""
    day = f"FLOOR({time_column} TO DAY)"
    seconds = int(width.total_seconds())
    return f"TIMESTAMPADD(SECOND, TIMESTAMPDIFF(SECOND, {day}, {time_column}) / {seconds} * {seconds}, {day})"


def queries(fresh: FreshSpec, interval_seconds: int) -> list[tuple[str, str]]:
    """(view name, query) of the group's fresh views, in order; the last one is the versions."""
    source, tc = fresh.source.strip("`"), fresh.time_column.strip("`")
    input_view, deltas_view = f"{fresh.name}__fresh_input", f"{fresh.name}__fresh_deltas"
    input_query = (f"SELECT *, {_slice_start(f'`{tc}`', fresh.slice_width)} AS fresh_slice_start, "
                   f"PROCTIME() AS fresh_time FROM `{source}`")
    window = f"TUMBLE(TABLE `{input_view}`, DESCRIPTOR(fresh_time), INTERVAL '{interval_seconds}' SECOND)"
    partials = ",\n  ".join(f"{expression} AS `{stored}`" for stored, expression, _ in fresh.partials)
    deltas_query = (f"SELECT {fresh.user_expression} AS user_id, fresh_slice_start, window_end AS fresh_written_at, "
                    f"window_time AS fresh_bucket_time,\n  {partials}\n"
                    f"{fresh.deltas_from[0]}{window}{fresh.deltas_from[1]}\n"
                    f"GROUP BY {fresh.user_group}, fresh_slice_start, window_start, window_end, window_time")
    over = "OVER w"
    totals = ",\n  ".join(f"{combine}(`{stored}`) {over} AS `{stored}`" for stored, _, combine in fresh.partials)
    width = int(fresh.slice_width.total_seconds())
    versions_query = (
        f"SELECT user_id, CAST(fresh_slice_start AS TIMESTAMP(3)) AS window_start, "
        f"CAST(TIMESTAMPADD(SECOND, {width}, fresh_slice_start) AS TIMESTAMP(3)) AS window_end, "
        f"CAST(MOD(COUNT(*) {over}, 2) AS INT) AS slot, COUNT(*) {over} AS version, "
        f"CAST(fresh_written_at AS TIMESTAMP(3)) AS written_at, "
        f"CAST(TIMESTAMPADD(SECOND, {SERVED_DELAY_SECONDS}, fresh_written_at) AS TIMESTAMP(3)) AS served_from,\n  "
        f"{totals}\nFROM `{deltas_view}`\n"
        f"WINDOW w AS (PARTITION BY user_id, fresh_slice_start ORDER BY fresh_bucket_time "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
    return [(input_view, input_query), (deltas_view, deltas_query), (fresh.table, versions_query)]


def interval_seconds(config: Config) -> int:
    """features.fresh.interval.seconds; 0 turns fresh slices off."""
    return config.get_int("features", "fresh.interval.seconds")


def load_plans(sql_dir: Path, config: Config) -> dict[str, FreshSpec | FreshReadsUnsupported]:
    """Every feature group's fresh plan, or why it has none."""
    plans: dict[str, FreshSpec | FreshReadsUnsupported] = {}
    for feature in load_features(sql_dir, config):
        try:
            plans[feature.name] = plan(feature)
        except FreshReadsUnsupported as reason:
            plans[feature.name] = reason
    return plans
