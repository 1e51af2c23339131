"""Which windows a backfill writes (jobs/backfill/complete_windows.py): the bounds and what is reported."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobs import feature_job
from jobs.backfill import complete_windows
from jobs.backfill.complete_windows import InputSpan, WindowRange
from jobs.definitions.config import PROJECT_ROOT, load
from jobs.definitions.feature_specs import FeatureSpec

CONFIG = load(PROJECT_ROOT / "deploy" / "config" / "local.json", "backfill")  # skew 300 s, delay 30 s
SPAN = InputSpan(first_arrival=datetime(2026, 1, 1, 0, 37, 30, 120000),
                 first_event=datetime(2026, 1, 1, 0, 37, 10), last_event=datetime(2026, 1, 1, 2, 3, 8, 92000))
HOP_5M = FeatureSpec("user_activity_5m", "x.sql:1", "HOP", timedelta(minutes=1), timedelta(minutes=5), (), {})
TUMBLE_1H = FeatureSpec("user_activity_1h", "x.sql:1", "TUMBLE", timedelta(hours=1), timedelta(hours=1), (), {})


def test_backfill_windows_of_the_raw_archive_start_a_future_skew_after_the_first_arrival():
    windows = complete_windows.complete_range(SPAN, "archive", CONFIG, None)
    assert windows == WindowRange(datetime(2026, 1, 1, 0, 42, 30, 120000), datetime(2026, 1, 1, 2, 2, 38, 92000))
    assert windows.condition() == ("window_start >= TIMESTAMP '2026-01-01 00:42:30.120' "
                                   "AND window_end <= TIMESTAMP '2026-01-01 02:02:38.092'")


def test_backfill_windows_of_json_lines_start_a_watermark_delay_after_the_earliest_event():
    windows = complete_windows.complete_range(SPAN, "file", CONFIG, None)
    assert windows.start == datetime(2026, 1, 1, 0, 37, 40)


def test_backfill_from_only_narrows_the_windows():
    later, earlier = datetime(2026, 1, 1, 1, 0), datetime(2026, 1, 1, 0, 0)
    assert complete_windows.complete_range(SPAN, "archive", CONFIG, later).start == later
    assert complete_windows.complete_range(SPAN, "archive", CONFIG, earlier).start == datetime(2026, 1, 1, 0, 42, 30, 120000)
    assert WindowRange(later, None).condition() == "window_start >= TIMESTAMP '2026-01-01 01:00:00.000'"
    assert WindowRange(None, None).condition() is None


def test_backfill_reports_the_first_and_last_windows_written_and_the_skipped_ones():
    windows = complete_windows.complete_range(SPAN, "archive", CONFIG, None)
    # 5m: windows holding an event start 00:33..02:03; written 00:43..01:57; 10 before, 6 after.
    assert complete_windows.report(HOP_5M, SPAN, windows) == (
        "user_activity_5m: windows [2026-01-01 00:43:00, 2026-01-01 00:48:00) to [2026-01-01 01:57:00, "
        "2026-01-01 02:02:00) written; skipped 10 at the start and 6 at the end, covered by the input only in part "
        "(--include-partial-windows writes them)")
    assert complete_windows.report(TUMBLE_1H, SPAN, windows) == (
        "user_activity_1h: windows [2026-01-01 01:00:00, 2026-01-01 02:00:00) to [2026-01-01 01:00:00, "
        "2026-01-01 02:00:00) written; skipped 1 at the start and 1 at the end, covered by the input only in part "
        "(--include-partial-windows writes them)")


def test_backfill_reports_a_group_without_a_complete_window():
    short = InputSpan(SPAN.first_arrival, SPAN.first_event, datetime(2026, 1, 1, 1, 20))
    windows = complete_windows.complete_range(short, "archive", CONFIG, None)
    assert complete_windows.report(TUMBLE_1H, short, windows) == (
        "user_activity_1h: no window is complete in the input; skipped 2 (--include-partial-windows writes them)")
    assert complete_windows.report(TUMBLE_1H, InputSpan(SPAN.first_arrival, None, None), windows) == (
        "user_activity_1h: no valid events in the input, no window written")


def test_backfill_from_takes_an_iso_utc_time(capsys):
    base = ["backfill", "--input", "x", "--output-dir", "y", "--from"]
    assert feature_job._parser().parse_args(base + ["2026-01-01T01:00:00Z"]).write_from == datetime(2026, 1, 1, 1)
    with pytest.raises(SystemExit):
        feature_job._parser().parse_args(base + ["2026-01-01 01:00"])
    assert "argument --from: '2026-01-01 01:00' is not an ISO-8601 UTC time like 2026-01-01T01:00:00Z" in capsys.readouterr().err
