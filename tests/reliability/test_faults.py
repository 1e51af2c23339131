"""Faults on the real stack, each ending with exact final contents against the oracle.

Events are dated three hours ago and end with a fresh flush event (see tests/integration), so the
final PostgreSQL and committed Parquet rows must equal the oracle exactly: 0 lost, 0 doubled.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from deploy.local import config as local_config
from deploy.local import postgres
from deploy.local.state import StateDirs
from jobs import feature_job
from jobs.definitions.config import load
from jobs.streaming.environment import latest_checkpoint
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, s3_rows, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate


def _scenario(tmp_path: Path, name: str, seed: int, extra: dict[str, dict[str, str]] | None = None):
    config = write_config(tmp_path, name, extra=extra)
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=seed, events=3000, users=20, duplicate_share=0.15,
                                       start=now - timedelta(hours=3)) if line.strip()]
    return config, settings, lines, _flush_event(now), oracle.replay(lines, now, DELAY)


def _assert_exact(settings, expected, produced: list[str]) -> None:
    for feature, rows in (("user_activity_5m", oracle.user_activity_5m(expected)),
                          ("user_activity_1h", oracle.user_activity_1h(expected))):
        assert_matches(postgres_rows(settings, feature), rows)
        assert_matches(s3_rows(settings, feature), rows)  # also fails on a row committed twice
    assert sorted(r["payload"] for r in s3_rows(settings, "_raw")) == sorted(produced)


def _wait_for_everything(settings, expected, produced, job) -> None:
    want_5m, want_1h = len(oracle.user_activity_5m(expected)), len(oracle.user_activity_1h(expected))
    wait_for("every window in PostgreSQL and S3", lambda: (
        len(postgres_rows(settings, "user_activity_5m")) >= want_5m
        and len(postgres_rows(settings, "user_activity_1h")) >= want_1h
        and len(s3_rows(settings, "user_activity_5m")) >= want_5m
        and len(s3_rows(settings, "_raw")) >= len(produced)), job, timeout=240)


def test_killed_job_resumes_from_its_checkpoint_with_nothing_lost_or_doubled(tmp_path):
    config, settings, lines, flush, expected = _scenario(tmp_path, "fault-kill", seed=31)
    half = len(lines) // 2
    _produce(settings, lines[:half], tmp_path)
    job = JobProcess(config, tmp_path / "job.log").start()
    try:
        wait_for("a checkpoint after some output", lambda: latest_checkpoint(load(config, "run")) is not None
                 and len(postgres_rows(settings, "user_activity_5m")) > 0, job)
    finally:
        job.crash()
    _produce(settings, lines[half:] + [flush], tmp_path)
    resumed = JobProcess(config, tmp_path / "resumed.log").start()
    try:
        _wait_for_everything(settings, expected, lines + [flush], resumed)
    finally:
        resumed.stop()
    assert "resuming from checkpoint" in (tmp_path / "resumed.log").read_text()
    _assert_exact(settings, expected, lines + [flush])


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[postgres.Server]:
    """A PostgreSQL server of this test's own, on a free port: stopping it leaves the shared one,
    which tests running in parallel use, alone. `up` reuses it as an external server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shared = local_config.load(local_config.DEFAULT_CONFIG).postgres
    server = postgres.Server(StateDirs(tmp_path / "postgres-state").ensure(),
                             dataclasses.replace(shared, port=port, database="fault_pg"))
    server.start()
    yield server
    server.stop()


def test_postgres_outage_is_survived(tmp_path, own_postgres):
    """PostgreSQL stops for ~30 s mid-stream: the JDBC sink fails, the job restarts from its last
    checkpoint until the database is back, then catches up."""
    server = own_postgres
    jdbc_url = f"jdbc:postgresql://{server.settings.host}:{server.settings.port}/fault_pg"
    config, settings, lines, flush, expected = _scenario(tmp_path, "fault-pg", seed=37,
                                                         extra={"rds": {"jdbc.url": jdbc_url}})
    half = len(lines) // 2
    _produce(settings, lines[:half], tmp_path)
    job = JobProcess(config, tmp_path / "job.log").start()
    try:
        wait_for("first rows", lambda: len(postgres_rows(settings, "user_activity_5m")) > 0, job)
        assert server.stop() is not None, "the test needs a PostgreSQL it can stop"
        try:
            _produce(settings, lines[half:] + [flush], tmp_path)
            for _ in range(15):  # ~30 s down; the job must ride it out, not exit
                time.sleep(2)
                job.check_alive()
        finally:
            server.start()
        _wait_for_everything(settings, expected, lines + [flush], job)
    finally:
        job.stop()
    _assert_exact(settings, expected, lines + [flush])
