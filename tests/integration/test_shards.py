"""Several Kinesis shards under real conditions: a backlog read by the real job process.

Every event is put before the job starts (each shard holds a backlog of about 70 minutes), then
the job reads from TRIM_HORIZON. The watermark is per source subtask, so a subtask that reads two
shards interleaves their backlogs and drops good events as late; with one shard per subtask each
subtask reads its shard in arrival order and the result equals the oracle (which reads all
records in one global arrival order: no valid event is late, out-of-order stays within 30 s).

These tests reshard, so they run their own emulator from this checkout (deploy/local/emulator.py
splits and merges as Kinesis does); PostgreSQL is the shared one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from deploy.local import aws, aws_endpoint
from jobs import feature_job
from tests import oracle
from tests.integration.stack import ROOT, JobProcess, postgres_rows, s3_rows, start_services, wait_for, write_config
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """This checkout's emulator on a free port, stopped after the module's tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    process = subprocess.Popen([sys.executable, "-m", "deploy.local.emulator", "--port", str(port)],
                               cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not aws_endpoint.serves_kinesis_and_s3(url, "us-east-1"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _config(folder: Path, name: str, endpoint: str, *, shards: int, parallelism: int) -> Path:
    """write_config's on the given endpoint, with an idle timeout longer than a subtask's start:
    a subtask marked idle before its first record would let the others' watermark run ahead."""
    path = write_config(folder, name, shards=shards, parallelism=parallelism)
    overrides = {"source": {"aws.endpoint": endpoint}, "output": {"s3.endpoint": endpoint},
                 "events": {"idle.timeout.seconds": "30"}}
    groups = json.loads(path.read_text())
    for group in groups:
        group["PropertyMap"].update(overrides.get(group["PropertyGroupId"], {}))
    path.write_text(json.dumps(groups, indent=2))
    return path


def _open_shards(kinesis: Any, stream: str) -> list[dict]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def _partition_key(line: str) -> str:
    """The user, as a producer keys its records (one user's events stay on one shard)."""
    try:
        return str(json.loads(line)["user_id"]) or line
    except (ValueError, TypeError, KeyError):
        return line


def put_by_user(kinesis: Any, stream: str, lines: list[str]) -> None:
    """Spread the records over the open shards by user (ExplicitHashKey = a shard's first key)."""
    starts = [s["HashKeyRange"]["StartingHashKey"] for s in _open_shards(kinesis, stream)]
    records = [{"Data": line.encode(), "PartitionKey": "k",
                "ExplicitHashKey": starts[zlib.crc32(_partition_key(line).encode()) % len(starts)]}
               for line in lines]
    for start in range(0, len(records), 500):
        response = kinesis.put_records(StreamName=stream, Records=records[start:start + 500])
        assert response["FailedRecordCount"] == 0


def put_flush_everywhere(kinesis: Any, stream: str, now: datetime) -> None:
    """One fresh event on every open shard (copies of one txid: counted once): every subtask's
    watermark passes all the backlog's windows once it has read its own shard to the end."""
    moment = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    line = json.dumps({"txid": "flush-1", "user_id": "flush-user", "event_type": "Z", "event_time": moment})
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": line.encode(), "PartitionKey": "k", "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"]}
        for s in _open_shards(kinesis, stream)])


def wait_quietly(condition: Callable[[], bool], job: JobProcess, timeout: float) -> None:
    """Like wait_for, without failing at the end: the assertions after it say what is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        job.check_alive()
        time.sleep(2)


def assert_no_event_late_and_windows_equal_the_oracle(settings, expected: oracle.Outcome) -> None:
    late = s3_rows(settings, "_late")
    assert not expected.late
    assert not late, f"{len(late)} valid events were dropped as late, e.g. {late[0]['payload']}"
    assert_matches(postgres_rows(settings, "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(postgres_rows(settings, "user_activity_1h"), oracle.user_activity_1h(expected))


def merge_then_split(kinesis: Any, stream: str) -> None:
    """4 shards -> merge 0+1 into 4 -> split 4 into 5 and 6: open shards 2, 3, 5, 6, even ranges,
    as after scaling down and up again. Their ids are no longer consecutive."""
    first, second = kinesis.list_shards(StreamName=stream)["Shards"][:2]
    kinesis.merge_shards(StreamName=stream, ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
    merged = next(s for s in kinesis.list_shards(StreamName=stream)["Shards"] if s.get("AdjacentParentShardId"))
    middle = int(second["HashKeyRange"]["StartingHashKey"])
    kinesis.split_shard(StreamName=stream, ShardToSplit=merged["ShardId"], NewStartingHashKey=str(middle))


def run_backlog(folder: Path, name: str, endpoint: str, *, parallelism: int, seed: int) -> None:
    config = _config(folder, name, endpoint, shards=4, parallelism=parallelism)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    kinesis = aws.kinesis(settings)
    merge_then_split(kinesis, settings.stream_name)
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=seed, events=1200, users=12, duplicate_share=0.0,
                                       start=now - timedelta(hours=3)) if line.strip()]
    expected = oracle.replay(lines, now, DELAY)
    put_by_user(kinesis, settings.stream_name, lines)
    put_flush_everywhere(kinesis, settings.stream_name, now)
    produced = len(lines) + 4
    job = JobProcess(config, folder / "job.log", env={"FLINK_LOG_DIR": str(folder / "flink")}).start()
    try:
        wait_for("the whole backlog in the raw archive", lambda: len(s3_rows(settings, "_raw")) >= produced, job)
        want_1h, want_5m = len(oracle.user_activity_1h(expected)), len(oracle.user_activity_5m(expected))
        wait_quietly(lambda: len(postgres_rows(settings, "user_activity_1h")) >= want_1h
                     and len(postgres_rows(settings, "user_activity_5m")) >= want_5m, job, timeout=60)
        time.sleep(6)  # late rows commit with the next checkpoints (every 2 s)
    finally:
        job.stop()
    assert_no_event_late_and_windows_equal_the_oracle(settings, expected)


def test_a_backlog_on_4_shards_at_parallelism_4_is_exact(tmp_path, endpoint):
    """A resharded stream's 4 open shards, one per subtask: each subtask's watermark is its
    shard's, nothing is late."""
    run_backlog(tmp_path, "shards-backlog-p4", endpoint, parallelism=4, seed=31)
