"""The application zip on a real Flink cluster, run the way Managed Flink runs it: a JobManager and
two TaskManagers from the PyFlink distribution (RocksDB, incremental checkpoints in the local S3
endpoint, parallelism 2, one slot each), the zip unpacked alone in a temporary folder and started
with `flink run --python jobs/managed_flink_main.py --jarfile lib/pyflink-dependencies.jar
--pyFiles lib/python`, its runtime properties read from a properties file, on a stream of 2 shards.
The zip also holds the example feature that calls a Python UDF, so the TaskManagers run Python
workers, which must import udfs/ from the zip's lib/python.

One cluster and one job serve the module; each test sends a batch of events dated after the
previous test's "flush" events (one per shard: they move the watermark past every window of its batch), so
what PostgreSQL and Parquet must hold after each test is the oracle of everything sent so far,
minus the windows of the last flush events, which stay open.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from deploy.local import aws, cluster, producer
from deploy.local.state import StateDirs
from deploy.managed_flink import package
from jobs import feature_job
from jobs.streaming.environment import JAR_NAME
from tests import oracle
from tests.integration.stack import ROOT, postgres_rows, s3_rows, start_services, write_config
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

log = logging.getLogger(__name__)

NAME = "cluster-e2e"
# Not the ports `python -m deploy.local cluster` uses, so a user's cluster and the test never meet.
PORTS = cluster.Ports(rest=18181, rpc=16223, first=16300)
START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=6)
EVENTS = 2500
UDF_FEATURE = "user_spend_buckets_1h"


def _batch(number: int, seed: int) -> list[str]:
    """Events over 70 minutes from START + 3 h x (number - 1), with txids of their own."""
    start = START + timedelta(hours=3 * (number - 1))
    return [line.replace('{"txid": "t-', f'{{"txid": "b{number}-', 1)
            for line in generate(seed=seed, events=EVENTS, users=20, duplicate_share=0.15, start=start) if line.strip()]


def _produce(settings, lines: list[str], path: Path, rate: float | None = None) -> None:
    path.write_text("\n".join(lines) + "\n")
    producer.produce(aws.kinesis(settings), settings.stream_name, path, rate)


def _flush(flink, number: int) -> None:
    """One event on each shard 2.5 h after the batch's start: past the end of all its windows plus
    the watermark delay on both source subtasks, so every window of the batch fires. (Neither
    subtask may go idle instead: a subtask that wakes up from idleness finds the other's watermark
    ahead, and its first events miss their windows.)"""
    moment = (START + timedelta(hours=3 * (number - 1), minutes=150)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    kinesis = aws.kinesis(flink.settings)
    for position, shard in enumerate(kinesis.list_shards(StreamName=flink.settings.stream_name)["Shards"]):
        line = json.dumps({"txid": f"flush-{number}-{position}", "user_id": "flush-user", "event_type": "Z",
                           "event_time": moment})
        kinesis.put_record(StreamName=flink.settings.stream_name, Data=line.encode(), PartitionKey="flush",
                           ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"])
        flink.sent.append(line)
    flink.flush_lines = position + 1


def _source_with_the_udf_example(root: Path) -> Path:
    """What the zip is built from (jobs/ udfs/ sql/), with sql/examples/user_spend_buckets_1h.sql enabled."""
    for folder in ("jobs", "udfs", "sql"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "sql" / "examples" / f"{UDF_FEATURE}.sql", root / "sql" / "features")
    return root


@pytest.fixture(scope="module")
def flink(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    # No source subtask goes idle during the module (see _flush).
    config = write_config(folder, NAME, shards=2, parallelism=2, extra={"events": {"idle.timeout.seconds": "600"}})
    settings = start_services(config)
    source = _source_with_the_udf_example(folder / "source")
    # The job run the Managed Flink way refuses missing tables, as in the cloud.
    assert feature_job.main(["migrate", "--config", str(config), "--sql-dir", str(source / "sql")]) == 0
    application = package.build(source, out=folder / "feature-pipeline.zip", jar=ROOT / "target" / JAR_NAME)
    running = cluster.Cluster(StateDirs(folder / "state"), PORTS)
    try:
        log.info("cluster up in %.1f s", cluster.up(running, settings, parallelism=2, checkpoint_seconds=2))
        started = time.monotonic()
        job_id = cluster.submit(running, application.path, cluster.properties_json(config, settings))
        log.info("submitted job %s in %.1f s", job_id, time.monotonic() - started)
        yield SimpleNamespace(cluster=running, settings=settings, folder=folder, job_id=job_id, sent=[])
    finally:
        for job in cluster.jobs(running) if cluster.overview(running) else ():
            if job["state"] not in ("FINISHED", "CANCELED", "FAILED"):
                cluster.cancel(running, job["jid"])
        cluster.down(running)


def _job_log_tail(flink, lines: int = 30) -> str:
    logs = sorted(flink.cluster.log_dir.glob("flink-jobmanager-*.log"))
    text = logs[-1].read_text(errors="replace") if logs else ""
    return "\n".join([line for line in text.splitlines() if not line.lstrip().startswith("at ")][-lines:])


def _wait(what: str, condition: Callable[[], bool], flink, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = cluster.rest(flink.cluster, f"/jobs/{flink.job_id}")["state"]
        if state in ("FAILED", "CANCELED", "FINISHED"):
            raise AssertionError(f"the job is {state}; JobManager log:\n{_job_log_tail(flink)}")
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; JobManager log:\n{_job_log_tail(flink)}")


def _checkpoints(flink) -> dict:
    return cluster.rest(flink.cluster, f"/jobs/{flink.job_id}/checkpoints")["counts"]


def _expected(flink) -> dict[str, dict]:
    """The oracle of everything sent so far but the last flush events, whose windows are still open."""
    outcome = oracle.replay(flink.sent[:-flink.flush_lines], datetime.now(timezone.utc), DELAY)
    return {"user_activity_5m": oracle.user_activity_5m(outcome), "user_activity_1h": oracle.user_activity_1h(outcome),
            UDF_FEATURE: oracle.user_spend_buckets_1h(outcome)}


def _wait_for_every_window(flink, expected: dict[str, dict]) -> None:
    for table, rows in expected.items():
        _wait(f"every {table} window in PostgreSQL", lambda: len(postgres_rows(flink.settings, table)) >= len(rows), flink)
        _wait(f"every {table} window in Parquet", lambda: len(s3_rows(flink.settings, table)) >= len(rows), flink)


def _assert_equal_the_oracle(flink, expected: dict[str, dict]) -> None:
    for table, rows in expected.items():
        assert_matches(postgres_rows(flink.settings, table), rows)
        assert_matches(s3_rows(flink.settings, table), rows)  # committed Parquet: each window once


def test_the_job_runs_from_the_zip_with_only_pyflink_beside_it(flink):
    """The properties file was read (the Managed Flink path ran, not --config) and the job's
    interpreter has PyFlink but none of this machine's other packages: boto3 comes from lib/python."""
    submit_log = (flink.cluster.log_dir / "submit.log").read_text()
    assert "table environment ready (Managed Flink)" in submit_log
    assert "flink-application-" in submit_log and str(cluster.REPO_ROOT) not in submit_log.split("$ ", 1)[1]
    env = {"PATH": "/usr/bin:/bin"}
    python = str(flink.cluster.python)
    assert subprocess.run([python, "-c", "import pyflink.table"], env=env).returncode == 0
    for absent in ("boto3", "psycopg", "jobs", "udfs", "pytest"):
        assert subprocess.run([python, "-c", f"import {absent}"], env=env, cwd="/", capture_output=True).returncode != 0, absent
    job = cluster.rest(flink.cluster, f"/jobs/{flink.job_id}")
    sources = [vertex for vertex in job["vertices"] if vertex["name"].startswith("Source: events")]
    assert sources and all(vertex["parallelism"] == 2 for vertex in sources)
    assert any("PythonCalc" in vertex["name"] for vertex in job["vertices"])  # Python workers run the UDF
    assert cluster.overview(flink.cluster)["taskmanagers"] == 2


def test_postgres_and_parquet_equal_the_oracle(flink):
    lines = _batch(1, seed=31)
    flink.sent += lines
    _produce(flink.settings, lines, flink.folder / "batch-1.jsonl")
    _flush(flink, 1)
    expected = _expected(flink)
    _wait_for_every_window(flink, expected)
    _assert_equal_the_oracle(flink, expected)


def test_a_killed_taskmanager_is_replaced_and_the_job_resumes_from_its_checkpoint(flink):
    """SIGKILL one TaskManager while events stream in; a replacement starts (as Kubernetes would
    restart its pod: each has the only slot its subtask can use), the job restores its last
    checkpoint, and PostgreSQL and Parquet still equal the oracle: nothing lost, nothing doubled."""
    lines = _batch(2, seed=32)
    flink.sent += lines
    batch_start = START + timedelta(hours=3)
    sender = threading.Thread(target=_produce, args=(flink.settings, lines, flink.folder / "batch-2.jsonl", 200.0))
    sender.start()
    try:
        _wait("the first windows of the batch in PostgreSQL", lambda: any(
            row["window_start"] >= batch_start.replace(tzinfo=None) for row in postgres_rows(flink.settings, "user_activity_5m")), flink)
        completed = _checkpoints(flink)["completed"]
        _wait("a checkpoint after those windows", lambda: _checkpoints(flink)["completed"] > completed, flink)
        assert sender.is_alive(), "every event was sent before the kill: send more or slower"
        victim = flink.cluster.recorded("taskmanager-1")
        os.kill(victim, signal.SIGKILL)
        log.info("killed taskmanager-1 (pid %d) mid-stream", victim)
        cluster.start_taskmanager(flink.cluster, 3)
        _wait("the job to restore its checkpoint", lambda: _checkpoints(flink)["restored"] >= 1, flink)
    finally:
        sender.join()
    _flush(flink, 2)
    expected = _expected(flink)
    _wait_for_every_window(flink, expected)
    _assert_equal_the_oracle(flink, expected)
    assert cluster.overview(flink.cluster)["taskmanagers"] == 2
