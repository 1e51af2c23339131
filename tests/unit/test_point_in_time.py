"""The window-choice rule shared by online and offline reads, and what it reads from a feature file."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jobs.definitions.config import load
from jobs.definitions.feature_specs import load_specs, spec_of
from jobs.definitions.sql_catalog import Feature, SqlFileError, Statement
from jobs.reads.point_in_time import Choice, Marker, aligned_end, choose_window

ROOT = Path(__file__).resolve().parents[2]
MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 1, 1, 12, 0)


def _spec(sql: str):
    return spec_of(Feature("f", Statement(Path("f.sql"), 3, sql)))


def test_shipped_features_windows_and_neutral_values():
    specs = load_specs(ROOT / "sql", load(ROOT / "deploy" / "config" / "local.json", "serve"))
    five, hour = specs["user_activity_5m"], specs["user_activity_1h"]
    assert (five.window, five.slide, five.size) == ("HOP", MINUTE, 5 * MINUTE)
    assert (hour.window, hour.slide, hour.size) == ("TUMBLE", 60 * MINUTE, 60 * MINUTE)
    assert five.neutral == {"event_count": 0, "a_event_count": 0, "amount_sum": 0.0}
    assert hour.neutral == {"event_count": 0, "a_event_count": 0, "amount_sum": 0.0, "amount_max": None,
                            "distinct_event_types": 0}


def test_neutral_value_follows_the_expression():
    spec = _spec("""SELECT user_id, window_start, window_end,
      CAST(COUNT(*) AS INT) AS n,                -- a count, cast
      COUNT(*) FILTER (WHERE x = 'a,b') AS n_a,  -- a count with a filter (comma in a quote)
      SUM(a) / COUNT(*) AS ratio,                -- an expression over aggregates: NULL
      COALESCE(MAX(b), -1.5) AS mb, AVG(c) c_avg, COALESCE(MIN(s), 'none') AS first_s
    FROM TABLE(HOP(DATA => TABLE e, TIMECOL => DESCRIPTOR(t), SIZE => INTERVAL '2' HOURS,
                   SLIDE => INTERVAL '10' MINUTES))
    GROUP BY user_id, window_start, window_end""")
    assert spec.neutral == {"n": 0, "n_a": 0, "ratio": None, "mb": -1.5, "c_avg": None, "first_s": "none"}
    assert (spec.slide, spec.size) == (10 * MINUTE, 120 * MINUTE)


@pytest.mark.parametrize("window, message", [
    ("CUMULATE(TABLE e, DESCRIPTOR(t), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)", "CUMULATE windows are not supported"),
    ("TUMBLE(TABLE e, DESCRIPTOR(t), INTERVAL '1' HOUR, INTERVAL '5' MINUTE)", "offsets are not supported"),
    ("TUMBLE(TABLE e, DESCRIPTOR(t), INTERVAL '1:30' HOUR TO MINUTE)", "must be like INTERVAL '5' MINUTE"),
    ("e", "exactly one TUMBLE or HOP window"),
])
def test_unsupported_windows_name_the_file(window, message):
    with pytest.raises(SqlFileError, match=rf"^f\.sql:3: .*{message}"):
        _spec(f"SELECT user_id, window_start, window_end, COUNT(*) AS n FROM TABLE({window}) GROUP BY 1")


def test_aligned_end_rounds_down_to_the_slide():
    assert aligned_end(datetime(2026, 1, 1, 12, 7, 59), MINUTE) == datetime(2026, 1, 1, 12, 7)
    assert aligned_end(datetime(2026, 1, 1, 12, 7), MINUTE) == datetime(2026, 1, 1, 12, 7)  # end is exclusive
    assert aligned_end(datetime(2026, 1, 1, 12, 59), 60 * MINUTE) == T0


def _choose(as_of, markers: dict, stored: dict):
    """stored: window_end -> rows in storage."""
    by_end = {m.window_end: m for m in markers.values()} if markers else {}
    return choose_window(as_of, MINUTE, 5 * MINUTE, min(by_end, default=None), max(by_end, default=None),
                         by_end.get, lambda m: stored.get(m.window_end, 0) >= m.row_count)


def _marker(minutes: int, rows: int) -> Marker:
    end = T0 + minutes * MINUTE
    return Marker(end - 5 * MINUTE, end, rows)


def test_latest_complete_window_at_or_before_as_of():
    markers = {m: _marker(m, 2) for m in (1, 2, 3)}
    complete = {T0 + m * MINUTE: 2 for m in (1, 2, 3)}
    assert _choose(T0 + 2.5 * MINUTE, markers, complete) == Choice(T0 - 3 * MINUTE, T0 + 2 * MINUTE, True)
    # Past the emitted point: the newest window, however stale (the caller reports staleness).
    assert _choose(T0 + 90 * MINUTE, markers, complete).window_end == T0 + 3 * MINUTE


def test_window_without_marker_between_markers_had_no_events():
    markers = {m: _marker(m, 2) for m in (1, 4)}
    stored = {T0 + MINUTE: 2, T0 + 4 * MINUTE: 2}
    assert _choose(T0 + 3 * MINUTE, markers, stored) == Choice(T0 - 2 * MINUTE, T0 + 3 * MINUTE, False)


def test_incomplete_window_steps_back():
    markers = {m: _marker(m, 3) for m in (1, 2, 3)}
    stored = {T0 + MINUTE: 3, T0 + 2 * MINUTE: 3, T0 + 3 * MINUTE: 2}  # one row of 12:03 not written yet
    assert _choose(T0 + 10 * MINUTE, markers, stored).window_end == T0 + 2 * MINUTE


def test_before_history_or_nothing_emitted_is_unknown():
    markers = {m: _marker(m, 1) for m in (5, 6)}
    assert _choose(T0 + 4 * MINUTE, markers, {T0 + 5 * MINUTE: 1, T0 + 6 * MINUTE: 1}) is None
    assert _choose(T0, {}, {}) is None


def test_training_knows_only_the_windows_served_by_each_moment():
    """The offline read's timeline of served windows: a marker counts from its served_from on."""
    from jobs.reads.training import _GroupData

    group = _GroupData(None, {T0 + n * MINUTE: Marker(T0 + (n - 5) * MINUTE, T0 + n * MINUTE, 1) for n in (1, 2, 3)})
    group.served = [(T0 + 1 * MINUTE + timedelta(seconds=37), T0 + 1 * MINUTE),
                    (T0 + 2 * MINUTE + timedelta(seconds=37), T0 + 2 * MINUTE),
                    (T0 + 3 * MINUTE + timedelta(seconds=37), T0 + 3 * MINUTE)]
    assert group.latest_served(T0 + MINUTE, as_complete=False) is None
    assert group.latest_served(T0 + 2 * MINUTE + timedelta(seconds=36), as_complete=False) == T0 + MINUTE
    assert group.latest_served(T0 + 2 * MINUTE + timedelta(seconds=37), as_complete=False) == T0 + 2 * MINUTE
    assert group.latest_served(T0, as_complete=True) == T0 + 3 * MINUTE
