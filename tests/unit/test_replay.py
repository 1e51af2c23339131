"""The replay upgrade's cut-over: the start bound, new groups, refusals, the property round trip."""

from datetime import datetime, timedelta

import pytest

from jobs.definitions.config import load
from jobs.definitions.replay import Cut, ReplayError, Window, check_retention, key_problems, plan
from tests.unit.test_sql_catalog import ROOT

MINUTE = timedelta(minutes=1)
SKEW = timedelta(minutes=5)
WINDOWS = {"user_activity_5m": Window(MINUTE, 5 * MINUTE), "user_activity_1h": Window(60 * MINUTE, 60 * MINUTE)}
T = datetime(2026, 12, 1, 10, 0)


def test_start_covers_the_first_unwritten_window_of_every_group():
    existing = {"user_activity_5m": {"postgres": T + 7 * MINUTE, "parquet": T + 6 * MINUTE},
                "user_activity_1h": {"postgres": T + 60 * MINUTE, "parquet": T + 60 * MINUTE}}
    cut = plan("fp", WINDOWS, existing, T + 67 * MINUTE + timedelta(seconds=40), SKEW)
    # 5m: the first window Parquet lacks ends 10:07 and starts 10:02; 1h: ends 12:00, starts 11:00.
    assert cut.start == T + 2 * MINUTE - SKEW


def test_both_sinks_take_the_older_cut_so_they_hold_the_same_logic():
    """An edited group whose PostgreSQL got one window further than Parquet: that window is written
    again to PostgreSQL (an upsert, with the new logic), so training and serving agree on it."""
    for postgres, parquet in ((T + 7 * MINUTE, T + 6 * MINUTE), (T + 6 * MINUTE, T + 7 * MINUTE)):
        existing = {"user_activity_5m": {"postgres": postgres, "parquet": parquet}}
        cut = plan("fp", WINDOWS, existing, T + 8 * MINUTE, SKEW)
        assert cut.writes_after("user_activity_5m") == T + 6 * MINUTE
        assert cut.writes_after("user_activity_1h") == T  # a new group: the newest end written anywhere, 10:07


def test_a_new_group_starts_with_the_first_window_after_the_cut_over():
    """The cut-over is how far the old version got (its newest window end, 10:07), not the clock."""
    existing = {"user_activity_5m": {"postgres": T + 7 * MINUTE, "parquet": T + 6 * MINUTE}}
    cut = plan("fp", WINDOWS, existing, T + 3 * 60 * MINUTE, SKEW)
    assert cut.writes_after("user_activity_1h") == T  # its window ending 11:00 is complete
    assert cut.start == T - SKEW
    assert plan("fp", WINDOWS, {}, T + 7 * MINUTE, SKEW).writes_after("user_activity_5m") == T + 7 * MINUTE


def test_a_group_with_markers_in_only_one_sink_is_refused():
    with pytest.raises(ReplayError, match="user_activity_5m has progress markers .* but none in parquet yet"):
        plan("fp", WINDOWS, {"user_activity_5m": {"postgres": T, "parquet": None}}, T, SKEW)


def test_a_group_that_has_not_emitted_yet_recomputes_its_open_window():
    """A 1-hour group 47 minutes into its first hour: no marker anywhere, like a new group."""
    existing = {"user_activity_5m": {"postgres": T + 47 * MINUTE, "parquet": T + 46 * MINUTE},
                "user_activity_1h": {"postgres": None, "parquet": None}}
    cut = plan("fp", WINDOWS, existing, T + 48 * MINUTE, SKEW)
    assert cut.writes_after("user_activity_1h") == T and cut.start == T - SKEW


def test_retention_shorter_than_the_replay_is_refused():
    check_retention(T - timedelta(hours=2), 24, "s", now=T)
    with pytest.raises(ReplayError, match=r"keeps records for 24 h \(RetentionPeriodHours\).*increase-stream-retention"):
        check_retention(T - timedelta(hours=23, minutes=58), 24, "s", now=T)


def test_cut_round_trips_through_runtime_properties_and_the_config():
    cut = Cut("abc", T - SKEW, {"user_activity_5m": T - MINUTE})
    assert Cut.from_properties(cut.to_properties()) == cut
    assert not key_problems(cut.to_properties())
    assert key_problems({"until.x.redis": "2026-01-01T00:00:00Z"})[0].startswith("property group 'replay' key 'until.x.redis'")
    assert key_problems({"until.x": "yesterday"})[0].endswith("got 'yesterday'")
    config = load(ROOT / "deploy" / "config" / "local.json", "run").with_cut(cut)
    assert config.cut() == cut
    assert (config.get("source", "init.position"), config.get("source", "init.timestamp")) == ("AT_TIMESTAMP", "2026-12-01T09:55:00Z")
