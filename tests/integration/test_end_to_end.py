"""End to end on the real stack: generated events -> Kinesis endpoint -> the real job (its own
process) -> PostgreSQL rows and S3 Parquet, every value compared with tests/oracle.py.

The events are dated three hours ago and end with one fresh "flush" event that moves the
watermark past all their windows; the flush event's own windows stay open, so what the job must
have written is exactly the oracle's rows for the generated events.
"""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from deploy.local import aws, producer
from jobs import feature_job
from tests import oracle
from tests.integration.stack import (JobProcess, assert_reads_match, postgres_rows, s3_rows, start_services, wait_for,
                                     write_config)
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

STREAM = "e2e-events"


def _flush_event(now: datetime) -> str:
    moment = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return json.dumps({"txid": "flush-1", "user_id": "flush-user", "event_type": "Z", "event_time": moment})


def _produce(settings, lines: list[str], folder: Path) -> None:
    events = folder / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    producer.produce(aws.kinesis(settings), settings.stream_name, events, None)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    config = write_config(folder, STREAM)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    now = datetime.now(timezone.utc)
    lines = generate(seed=21, events=2500, users=20, duplicate_share=0.15, start=now - timedelta(hours=3))
    lines = [line for line in lines if line.strip()]  # a blank line in a file is no Kinesis record
    expected = oracle.replay(lines, now, DELAY)
    produced = lines + [_flush_event(now)]
    job = JobProcess(config, folder / "job.log").start()
    try:
        _produce(settings, produced, folder)
        expected_5m = oracle.user_activity_5m(expected)
        expected_1h = oracle.user_activity_1h(expected)
        wait_for("every window in PostgreSQL",
                 lambda: len(postgres_rows(settings, "user_activity_5m")) >= len(expected_5m)
                 and len(postgres_rows(settings, "user_activity_1h")) >= len(expected_1h), job)
        wait_for("the Parquet copy and the raw archive in S3",
                 lambda: len(s3_rows(settings, "user_activity_5m")) >= len(expected_5m)
                 and len(s3_rows(settings, "_raw")) >= len(produced), job)
        yield SimpleNamespace(settings=settings, config=config, folder=folder, produced=produced,
                              expected=expected, job=job)
    finally:
        job.stop()


def test_postgres_rows_equal_the_oracle(e2e):
    assert_matches(postgres_rows(e2e.settings, "user_activity_5m"), oracle.user_activity_5m(e2e.expected))
    assert_matches(postgres_rows(e2e.settings, "user_activity_1h"), oracle.user_activity_1h(e2e.expected))


def test_parquet_rows_equal_the_oracle(e2e):
    rows_5m = s3_rows(e2e.settings, "user_activity_5m")
    assert_matches(rows_5m, oracle.user_activity_5m(e2e.expected))
    assert_matches(s3_rows(e2e.settings, "user_activity_1h"), oracle.user_activity_1h(e2e.expected))
    assert all(r["dt"] == int(r["window_start"].strftime("%Y%m%d")) and r["hr"] == r["window_start"].hour for r in rows_5m)


def test_malformed_records_are_in_the_s3_quarantine(e2e):
    wait_for("the quarantine", lambda: len(s3_rows(e2e.settings, "_quarantine")) >= len(e2e.expected.quarantined), e2e.job)
    rows = s3_rows(e2e.settings, "_quarantine")
    assert sorted((r["payload"], r["reason"]) for r in rows) == sorted(e2e.expected.quarantined)
    assert all(r["shard_id"] and r["sequence_number"] and r["arrival_time"] for r in rows)


def test_raw_archive_holds_every_record_as_received(e2e):
    rows = s3_rows(e2e.settings, "_raw")
    assert sorted(r["payload"] for r in rows) == sorted(e2e.produced)
    assert all(r["shard_id"] and r["sequence_number"] and r["arrival_time"] for r in rows)


def _last_counters(log_text: str) -> dict[str, int]:
    lines = [line for line in log_text.splitlines() if "counters: read=" in line]
    if not lines:
        return {}
    fields = lines[-1].rsplit("counters: ", 1)[1].replace("emitted ", "emitted_").replace(
        "dropped_by_window ", "dropped_by_window_").split()
    return {key: int(value) for key, value in (field.split("=") for field in fields)}


def test_counters_are_flink_metrics_and_logged(e2e):
    expected = e2e.expected
    valid = len(e2e.produced) - len(expected.quarantined)
    want = {"read": len(e2e.produced), "malformed": len(expected.quarantined),
            "emitted_user_activity_5m": len(oracle.user_activity_5m(expected)),
            "emitted_user_activity_1h": len(oracle.user_activity_1h(expected)),
            # Whether a re-send is "late" or a "duplicate" depends on when it met the watermark;
            # together they are every valid record not counted (the flush event counts, emits nothing).
            "late+duplicates_dropped": valid - len(expected.counted) - 1,
            # Without a restart the window operators drop nothing the late filter let through.
            "dropped_by_window_user_activity_5m": 0, "dropped_by_window_user_activity_1h": 0}

    def logged() -> dict[str, int]:
        counters = _last_counters(e2e.job.log.read_text())
        counters["late+duplicates_dropped"] = counters.get("late", 0) + counters.get("duplicates_dropped", 0)
        return {key: counters.get(key) for key in want}

    # Flink's REST API refreshes each vertex's metrics on its own (every ~10 s), so the line
    # settles on the final figures a little after the data does.
    wait_for("the logged counters to reach the final figures", lambda: logged() == want, e2e.job, timeout=90)


def _marker_counts(rows: list[dict]) -> dict[tuple[str, datetime], int]:
    return {(r["feature_group"], r["window_end"]): r["row_count"] for r in rows}


def test_progress_markers_and_feature_reads_equal_the_oracle(e2e):
    """The streaming job's progress markers (PostgreSQL and S3) count each window's rows, and both
    reads built on them (online from PostgreSQL, training sets from S3) answer as the oracle does."""
    expected = {"user_activity_5m": oracle.user_activity_5m(e2e.expected),
                "user_activity_1h": oracle.user_activity_1h(e2e.expected)}
    want = {(name, end): count for name, rows in expected.items()
            for end, count in Counter(end for _, _, end in rows).items()}
    wait_for("every progress marker in PostgreSQL",
             lambda: _marker_counts(postgres_rows(e2e.settings, "feature_progress")) == want, e2e.job)
    wait_for("every progress marker in S3", lambda: _marker_counts(
        s3_rows(e2e.settings, "_progress/user_activity_5m") + s3_rows(e2e.settings, "_progress/user_activity_1h")) == want,
        e2e.job)

    users = sorted({user for user, _, _ in expected["user_activity_5m"]})
    first = min(end for _, _, end in expected["user_activity_5m"])
    moments = [first + timedelta(minutes=minutes, seconds=17) for minutes in range(-2, 200, 7)]
    assert_reads_match(e2e.config, expected, users, moments)


def test_replaying_the_stream_leaves_postgres_unchanged(e2e):
    """A fresh job (--fresh: no state) re-reads the whole stream and upserts every window again: same rows,
    same values (double sums to the last bits: Flink adds partial sums in arrival order)."""
    e2e.job.stop()
    tables = ("user_activity_5m", "user_activity_1h")
    before = {table: postgres_rows(e2e.settings, table) for table in tables}
    raw_before = len(s3_rows(e2e.settings, "_raw"))
    replay = JobProcess(e2e.config, e2e.folder / "replay.log", ("--fresh",)).start()
    try:
        # The replay has re-read everything once its own raw archive copy is committed in S3.
        wait_for("the replay to re-read the stream", lambda: len(s3_rows(e2e.settings, "_raw")) >= 2 * raw_before, replay)
    finally:
        replay.stop()
    for table in tables:
        after = postgres_rows(e2e.settings, table)
        assert len(after) == len(before[table])
        key = ("user_id", "window_start", "window_end")
        assert_matches(after, {tuple(r[k] for k in key): {c: v for c, v in r.items() if c not in key} for r in before[table]})


def test_an_idle_shard_does_not_stop_the_windows(tmp_path):
    """2 shards, parallelism 2, every record on one shard: the idle timeout lets windows fire."""
    name = "e2e-idle"
    config = write_config(tmp_path, name, shards=2, parallelism=2)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    now = datetime.now(timezone.utc)
    lines = generate(seed=4, events=300, users=5, duplicate_share=0.1, start=now - timedelta(hours=3))
    expected = oracle.replay(lines, now, DELAY)
    kinesis = boto3.client("kinesis", endpoint_url=settings.kinesis_endpoint, region_name=settings.region,
                           aws_access_key_id="test", aws_secret_access_key="test")
    first_shard_hash = kinesis.list_shards(StreamName=settings.stream_name)["Shards"][0]["HashKeyRange"]["StartingHashKey"]
    job = JobProcess(config, tmp_path / "job.log").start()
    try:
        payloads = lines + [_flush_event(now)]
        for start in range(0, len(payloads), 500):
            kinesis.put_records(StreamName=settings.stream_name, Records=[
                {"Data": line.encode(), "PartitionKey": "one", "ExplicitHashKey": first_shard_hash}
                for line in payloads[start:start + 500]])
        expected_1h = oracle.user_activity_1h(expected)
        wait_for("windows despite the idle shard",
                 lambda: len(postgres_rows(settings, "user_activity_1h")) >= len(expected_1h), job)
    finally:
        job.stop()
    assert_matches(postgres_rows(settings, "user_activity_1h"), expected_1h)


def test_backfill_corrects_postgres_from_the_raw_events(tmp_path):
    """Recompute windows from the raw events of the whole history and upsert them (a slice of the
    history: tests/integration/test_backfill_correction.py)."""
    name = "e2e-correction"
    config = write_config(tmp_path, name)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    lines = generate(seed=17, events=500, users=5, duplicate_share=0.1, late=5)
    source = tmp_path / "raw.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert feature_job.main(["backfill", "--config", str(config), "--input", str(source),
                             "--output-dir", str(tmp_path / "out"), "--to-postgres", "--include-partial-windows"]) == 0
    expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    assert_matches(postgres_rows(settings, "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(postgres_rows(settings, "user_activity_1h"), oracle.user_activity_1h(expected))
