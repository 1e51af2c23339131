"""A correction backfill over part of the raw archive, into a PostgreSQL that already holds the
right rows: it rewrites only the windows its input covers completely and leaves the others alone.

The database starts with the oracle's rows and markers for the WHOLE event history (two hours and
more). The correction replays a slice of the archive that starts mid-hour and mid-5-minute window
and stops before the history ends. Every row must still equal the oracle over the whole history;
the rows of the windows the slice covers completely are corrupted first, so they must have been
rewritten; the Parquet output holds exactly those windows.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import psycopg
import pytest

from jobs import feature_job
from tests import oracle
from tests.archive import arrival_times, write_archive
from tests.integration.stack import postgres_rows, start_services, write_config
from tests.sql.test_backfill_oracle import DELAY, START, assert_matches, generate, read_rows

NAME = "backfill-correction"
SKEW = timedelta(seconds=300)  # events.future.skew.seconds of the shipped config
SLICE = (START + timedelta(minutes=37, seconds=30), START + timedelta(hours=2, minutes=3, seconds=10))
GROUPS = {"user_activity_5m": oracle.user_activity_5m, "user_activity_1h": oracle.user_activity_1h}


def _history() -> list[str]:
    """About 140 minutes of events: two generated spans, the second's txids renamed apart."""
    first = generate(seed=31, events=1500, users=8, duplicate_share=0.1, late=5)
    second = generate(seed=32, events=1500, users=8, duplicate_share=0.1, late=5, start=START + timedelta(minutes=70))
    second = [line.replace('"txid": "t-', '"txid": "s-').replace('"txid": "late-', '"txid": "slate-') for line in second]
    return first + second


def _insert(settings, table: str, rows: dict[tuple, dict], key_columns: tuple[str, ...]) -> None:
    columns = key_columns + tuple(next(iter(rows.values())))
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        connection.cursor().executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",  # noqa: S608
            [key + tuple(values.values()) for key, values in rows.items()])


def _markers(settings) -> dict[tuple, int]:
    return {(r["feature_group"], r["window_start"], r["window_end"]): r["row_count"]
            for r in postgres_rows(settings, "feature_progress")}


def _covered(key: tuple, first_start: datetime, last_end: datetime) -> bool:
    _, window_start, window_end = key
    return window_start >= first_start and window_end <= last_end


@pytest.fixture(scope="module")
def correction(tmp_path_factory):
    folder = tmp_path_factory.mktemp(NAME)
    config = write_config(folder, NAME)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    lines = _history()
    arrivals = arrival_times(lines, START)
    full = oracle.replay(lines, arrivals, DELAY, SKEW)
    expected = {name: build(full) for name, build in GROUPS.items()}
    for name, rows in expected.items():
        _insert(settings, name, rows, ("user_id", "window_start", "window_end"))
        counts = Counter((start, end) for _, start, end in rows)
        _insert(settings, "feature_progress", {(name, start, end): {"row_count": n} for (start, end), n in counts.items()},
                ("feature_group", "window_start", "window_end"))

    part = [(line, arrived) for line, arrived in zip(lines, arrivals) if SLICE[0] <= arrived < SLICE[1]]
    part_lines, part_arrivals = [line for line, _ in part], [arrived for _, arrived in part]
    assert part_arrivals[0].minute % 5 and part_arrivals[0].second  # mid-hour, mid-5-minute window
    write_archive(folder / "_raw", part_lines, part_arrivals)
    # What the slice covers completely, worked out here from the contract: events that arrived
    # before it are dated at most the future skew after their arrival; events after it are ahead
    # of its final watermark (the newest valid event time in it minus the delay).
    valid_times = [e.event_time for e in oracle.replay(part_lines, part_arrivals, DELAY, SKEW).counted]
    first_start = (part_arrivals[0] + SKEW).replace(tzinfo=None)
    last_end = (max(valid_times) - DELAY).replace(tzinfo=None)

    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        for name in GROUPS:
            connection.execute(f"UPDATE {name} SET event_count = -1 WHERE window_start >= %s AND window_end <= %s",  # noqa: S608
                               (first_start, last_end))
        connection.execute("UPDATE feature_progress SET row_count = -1 WHERE window_start >= %s AND window_end <= %s",
                           (first_start, last_end))
    corrupted = {name: sum(1 for key in rows if _covered(key, first_start, last_end)) for name, rows in expected.items()}
    markers_before = _markers(settings)
    out = folder / "out"
    assert feature_job.main(["backfill", "--config", str(config), "--input", str(folder / "_raw"),
                             "--output-dir", str(out), "--to-postgres"]) == 0
    return settings, expected, corrupted, first_start, last_end, out, markers_before


def test_backfill_correction_leaves_partial_windows_alone_and_rewrites_complete_ones(correction):
    settings, expected, corrupted, first_start, last_end, _, _ = correction
    assert corrupted["user_activity_5m"] > 100 and corrupted["user_activity_1h"] > 0  # [01:00, 02:00) at least
    assert len(expected["user_activity_5m"]) > corrupted["user_activity_5m"] + 100  # partial windows at both ends
    for name, rows in expected.items():
        assert_matches(postgres_rows(settings, name), rows)


def test_backfill_correction_rewrites_only_the_markers_of_complete_windows(correction):
    settings, expected, _, first_start, last_end, _, markers_before = correction
    markers = _markers(settings)
    for name, rows in expected.items():
        counts = Counter((start, end) for _, start, end in rows)
        assert {(s, e): n for (group, s, e), n in markers.items() if group == name} == counts
    assert any(n == -1 for n in markers_before.values())


def test_backfill_correction_writes_parquet_of_complete_windows_only(correction):
    _, expected, _, first_start, last_end, out, _ = correction
    for name, rows in expected.items():
        complete = {key: values for key, values in rows.items() if _covered(key, first_start, last_end)}
        assert_matches(read_rows(out / name), complete)
