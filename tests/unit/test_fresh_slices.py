"""Fresh slices from a feature's SQL (which groups can have them, what is stored) and the fresh read
rule (span, the newest version served, combining slices), without a JVM."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jobs.definitions.fresh_slices import FreshReadsUnsupported, plan, queries
from jobs.definitions.sql_catalog import Feature, Statement
from jobs.reads.fresh import SliceVersions, combine, slice_starts, span_start

MINUTE = timedelta(minutes=1)
HOP = "FROM TABLE(HOP(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))"
TUMBLE = "FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))"


def _feature(columns: str, window: str = HOP, tail: str = "GROUP BY user_id, window_start, window_end") -> Feature:
    text = f"-- a feature\nSELECT user_id, window_start, window_end,\n  {columns}\n{window}\n{tail}\n"
    return Feature("f", Statement(Path("sql/features/f.sql"), 1, text))


def test_the_combinable_aggregates_and_what_each_stores():
    fresh = plan(_feature("COUNT(*) AS n, COUNT(*) FILTER (WHERE event_type = 'A') AS a, "
                          "COALESCE(SUM(amount), 0.0) AS total, MIN(amount) AS low, MAX(amount) AS high, "
                          "AVG(amount) AS mean"))
    assert [(c.name, c.function, c.stored, c.default) for c in fresh.columns] == [
        ("n", "COUNT", ("n",), None), ("a", "COUNT", ("a",), None), ("total", "SUM", ("total",), 0.0),
        ("low", "MIN", ("low",), None), ("high", "MAX", ("high",), None),
        ("mean", "AVG", ("mean__sum", "mean__count"), None)]
    assert [(stored, combine) for stored, _, combine in fresh.partials] == [
        ("n", "SUM"), ("a", "SUM"), ("total", "SUM"), ("low", "MIN"), ("high", "MAX"),
        ("mean__sum", "SUM"), ("mean__count", "SUM")]
    assert (fresh.slice_width, fresh.size, fresh.table) == (MINUTE, 5 * MINUTE, "f__fresh")


def test_the_derived_queries_keep_the_features_filter_and_replace_its_window():
    fresh = plan(_feature("COUNT(*) AS n", HOP + "\nWHERE event_type <> 'Z'"))
    names = [name for name, _ in queries(fresh, 5)]
    deltas = dict(queries(fresh, 5))["f__fresh_deltas"]
    assert names == ["f__fresh_input", "f__fresh_deltas", "f__fresh"]
    assert "TUMBLE(TABLE `f__fresh_input`, DESCRIPTOR(fresh_time), INTERVAL '5' SECOND)" in deltas
    assert "WHERE event_type <> 'Z'" in deltas and "HOP" not in deltas


@pytest.mark.parametrize("columns, window, tail, reason", [
    ("COUNT(DISTINCT event_type) AS kinds", HOP, "GROUP BY user_id, window_start, window_end",
     r"column kinds \(COUNT\(DISTINCT event_type\)\): a DISTINCT aggregate"),
    ("COUNT(*) * 2 AS doubled", HOP, "GROUP BY user_id, window_start, window_end", r"column doubled .* cannot be combined"),
    ("LAST_VALUE(event_type) AS last_type", HOP, "GROUP BY user_id, window_start, window_end", r"column last_type"),
    ("COALESCE(MAX(amount), amount) AS m", HOP, "GROUP BY user_id, window_start, window_end", r"COALESCE\(<aggregate>, <literal>\)"),
    ("COUNT(*) AS n", HOP, "GROUP BY user_id, window_start, window_end HAVING COUNT(*) > 1", r"HAVING clause"),
    ("event_type AS kind, COUNT(*) AS n", HOP, "GROUP BY user_id, window_start, window_end, event_type", r"key columns kind"),
    ("COUNT(*) AS n", "FROM TABLE(HOP(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '7' MINUTE, INTERVAL '14' MINUTE))",
     "GROUP BY user_id, window_start, window_end", r"does not divide a day"),
])
def test_a_group_slices_cannot_combine_is_refused_naming_file_and_column(columns, window, tail, reason):
    with pytest.raises(FreshReadsUnsupported, match=r"^sql/features/f\.sql:1: feature 'f' has no fresh reads: .*" + reason):
        plan(_feature(columns, window, tail))


def test_the_span_is_the_open_slice_and_the_complete_ones_before_it():
    hop = plan(_feature("COUNT(*) AS n"))
    at = datetime(2026, 12, 1, 12, 3, 40)
    assert span_start(at, hop) == datetime(2026, 12, 1, 11, 59)
    assert slice_starts(at, hop) == [datetime(2026, 12, 1, 11, 59) + n * MINUTE for n in range(5)]
    assert span_start(datetime(2026, 12, 1, 12, 4), hop) == datetime(2026, 12, 1, 12, 0)  # on a boundary: a new slice
    tumble = plan(_feature("COUNT(*) AS n", TUMBLE))
    assert slice_starts(at, tumble) == [datetime(2026, 12, 1, 12, 0)]


def test_slices_combine_like_the_window_aggregate_would():
    fresh = plan(_feature("COUNT(*) AS n, COALESCE(SUM(amount), 0.0) AS total, MAX(amount) AS high, AVG(amount) AS mean"))
    slices = [{"n": 2, "total": 5.0, "high": 4.0, "mean__sum": 5.0, "mean__count": 2},
              {"n": 1, "total": None, "high": None, "mean__sum": None, "mean__count": 0}]
    assert combine(fresh, slices) == {"n": 3, "total": 5.0, "high": 4.0, "mean": 2.5}
    assert combine(fresh, slices[1:]) == {"n": 1, "total": 0.0, "high": None, "mean": None}  # amounts all NULL
    assert combine(fresh, []) == {"n": 0, "total": 0.0, "high": None, "mean": None}  # no events: the neutral values


def test_a_read_uses_each_slices_newest_version_served_by_then():
    fresh = plan(_feature("COUNT(*) AS n"))
    start = datetime(2026, 12, 1, 12, 0)
    versions = SliceVersions()
    versions.add("u", start, start + timedelta(seconds=6), 1, {"n": 1})
    versions.add("u", start, start + timedelta(seconds=11), 2, {"n": 3})
    versions.add("u", start + MINUTE, start + timedelta(seconds=66), 1, {"n": 2})
    versions.add("u", start - 5 * MINUTE, start, 9, {"n": 100})  # a slice outside the span
    versions.sort()
    assert versions.value(fresh, "u", start + timedelta(seconds=5)) == {"n": 0}
    assert versions.value(fresh, "u", start + timedelta(seconds=10)) == {"n": 1}
    assert versions.value(fresh, "u", start + timedelta(seconds=65)) == {"n": 3}
    assert versions.value(fresh, "u", start + timedelta(seconds=66)) == {"n": 5}
    assert versions.value(fresh, "other", start + timedelta(seconds=66)) == {"n": 0}
    # Known once some user's slice in the span was served (the job has run), whoever asks.
    assert not versions.any_served(fresh, start - timedelta(seconds=1))  # 11:55's slice is served from 12:00
    assert [versions.any_served(fresh, start + timedelta(seconds=s)) for s in (5, 6, 66)] == [False, True, True]
    assert not versions.any_served(fresh, start + 20 * MINUTE)
