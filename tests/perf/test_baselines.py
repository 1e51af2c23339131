"""The baselines the benchmark compares the job with compute what tests/oracle.py computes,
so the comparison is between equal outputs (speed is never asserted here)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from deploy.local import aws
from jobs import feature_job
from tests import oracle
from tests.integration.stack import postgres_rows, start_services, write_config
from tests.perf import baselines, feed
from tests.perf.baseline_features import WindowedFeatures, parse
from tests.perf.events import generate
from tests.sql.test_backfill_oracle import assert_matches

DELAY = timedelta(seconds=30)


def _lines() -> list[str]:
    # Re-sends (at this rate many arrive behind the watermark: late), ISO and epoch times,
    # absent/null amounts, disorder under the delay.
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    return list(generate(3000, users=25, duplicate_share=0.15, seed=5, start=start, events_per_second=2.0))


def _expected(lines: list[str]) -> oracle.Outcome:
    return oracle.replay(lines, datetime.now(timezone.utc), DELAY)


def _as_dicts(rows: list[tuple], columns: tuple[str, ...]) -> list[dict]:
    return [dict(zip(columns, row)) for row in rows]


COLUMNS_5M = ("user_id", "window_start", "window_end", "event_count", "a_event_count", "amount_sum")
COLUMNS_1H = COLUMNS_5M + ("amount_max", "distinct_event_types")


def test_windowed_features_equal_the_oracle():
    lines = _lines()
    features = WindowedFeatures(delay_ms=30_000)
    for line in lines:
        event = parse(line)
        assert event is not None
        features.add(event)
    closed_5m, closed_1h = features.pop_final()
    rest_5m, rest_1h = features.pop_final(flush_all=True)
    expected = _expected(lines)
    assert (features.duplicates, features.late) == (expected.duplicates, len(expected.late))
    assert_matches(_as_dicts(closed_5m + rest_5m, COLUMNS_5M), oracle.user_activity_5m(expected))
    assert_matches(_as_dicts(closed_1h + rest_1h, COLUMNS_1H), oracle.user_activity_1h(expected))


@pytest.fixture()
def stream_and_database(tmp_path):
    config = write_config(tmp_path, "perf-baselines-test")
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    lines = _lines()
    feed.put_all(aws.kinesis(settings), settings.stream_name, feed.records(lines))
    return settings, lines


@pytest.mark.parametrize("design", ["windowed", "per-event"])
def test_baselines_through_kinesis_and_postgres_equal_the_oracle(stream_and_database, design):
    settings, lines = stream_and_database
    stats = baselines.Stats()

    def read_all() -> bool:
        return stats.records >= len(lines)

    kinesis = aws.kinesis(settings)
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        if design == "windowed":
            features = baselines.run_windowed(kinesis, settings.stream_name, connection, 30_000, read_all, stats)
            baselines.write_rows(connection, *features.pop_final(flush_all=True))
        else:
            baselines.prepare_per_event(connection)
            baselines.run_per_event(kinesis, settings.stream_name, connection, read_all, stats)
    expected = _expected(lines)
    assert stats.counted == len(expected.counted)
    assert_matches(postgres_rows(settings, "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(postgres_rows(settings, "user_activity_1h"), oracle.user_activity_1h(expected))
