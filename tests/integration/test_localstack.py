"""Real LocalStack (installed by the project, no Docker) as the Kinesis + S3 endpoint.

* The job end to end through it: generated events -> LocalStack's Kinesis (kinesis-mock) -> the
  real job -> PostgreSQL rows and LocalStack S3 Parquet, both equal to tests/oracle.py. Sized to
  kinesis-mock's put rate (it falls with a shard's length: tests/perf/bench_endpoints.py).
* ``up`` uses a LocalStack already listening and ``down`` never stops it; ``up --aws localstack``
  on a free port starts one and ``down`` stops it.

Ports of its own (never the services' 4566); in CI (CI=true) an impossible install fails the module
instead of skipping it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from deploy.local import aws_endpoint, localstack, postgres, process, services
from deploy.local import config as local_config
from deploy.local.state import DEFAULT_STATE, StateDirs
from jobs import feature_job
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, s3_rows, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

E2E_PORT = 4610
STARTED_PORT = 4614
EMULATOR_PORT = 4616
HOST = "127.0.0.1"


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    try:
        localstack.install(DEFAULT_STATE.ensure())
    except localstack.LocalStackError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"LocalStack cannot be installed on this machine: {exc}")


def _localstack_config(folder: Path, name: str, port: int) -> Path:
    endpoint = f"http://{HOST}:{port}"
    return write_config(folder, name, extra={"source": {"aws.endpoint": endpoint}, "output": {"s3.endpoint": endpoint}})


def _stop_if_ours(state: StateDirs, port: int) -> None:
    pid = localstack.recorded_pid(state, port)
    if pid is not None:
        process.stop(pid, timeout=20)
        localstack.pid_file(state, port).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    folder = tmp_path_factory.mktemp("localstack-e2e")
    config = _localstack_config(folder, "localstack-e2e", E2E_PORT)
    try:
        settings = start_services(config, aws_kind="localstack")
        assert feature_job.main(["migrate", "--config", str(config)]) == 0
        now = datetime.now(timezone.utc)
        lines = [line for line in generate(seed=12, events=600, users=8, duplicate_share=0.15,
                                           start=now - timedelta(hours=3)) if line.strip()]
        expected = oracle.replay(lines, now, DELAY)
        produced = lines + [_flush_event(now)]
        job = JobProcess(config, folder / "job.log").start()
        try:
            _produce(settings, produced, folder)
            want_5m, want_1h = oracle.user_activity_5m(expected), oracle.user_activity_1h(expected)
            wait_for("every window in PostgreSQL", lambda: len(postgres_rows(settings, "user_activity_5m")) >= len(want_5m)
                     and len(postgres_rows(settings, "user_activity_1h")) >= len(want_1h), job)
            wait_for("the Parquet copy in LocalStack's S3", lambda: len(s3_rows(settings, "user_activity_5m")) >= len(want_5m)
                     and len(s3_rows(settings, "user_activity_1h")) >= len(want_1h), job)
            yield SimpleNamespace(settings=settings, want_5m=want_5m, want_1h=want_1h)
        finally:
            job.stop()
    finally:
        _stop_if_ours(DEFAULT_STATE, E2E_PORT)


def test_the_job_through_localstack_writes_the_oracle_rows_to_postgres(e2e: SimpleNamespace) -> None:
    assert aws_endpoint.status(e2e.settings, DEFAULT_STATE)[0].kind == "localstack"
    assert_matches(postgres_rows(e2e.settings, "user_activity_5m"), e2e.want_5m)
    assert_matches(postgres_rows(e2e.settings, "user_activity_1h"), e2e.want_1h)


def test_the_job_through_localstack_writes_the_oracle_rows_to_parquet(e2e: SimpleNamespace) -> None:
    assert_matches(s3_rows(e2e.settings, "user_activity_5m"), e2e.want_5m)
    assert_matches(s3_rows(e2e.settings, "user_activity_1h"), e2e.want_1h)


def _settings(folder: Path, name: str, port: int) -> local_config.LocalSettings:
    """The test's config, its database created by the services' own PostgreSQL (started if down;
    conftest.py stops it afterwards then): a state folder of the test's own would only reuse it."""
    settings = local_config.load(_localstack_config(folder, name, port))
    postgres.Server(DEFAULT_STATE, settings.postgres).start()
    return settings


def _own_state(tmp_path: Path) -> StateDirs:
    """A state folder of this test's own (so `down` sees only this test's pid files), sharing the
    LocalStack install."""
    state = StateDirs(tmp_path / "state").ensure()
    localstack.home(state).symlink_to(localstack.home(DEFAULT_STATE).resolve(), target_is_directory=True)
    return state


def test_up_uses_a_running_localstack_and_down_leaves_it_running(e2e: SimpleNamespace, tmp_path: Path) -> None:
    """The end-to-end LocalStack, seen from a state folder that did not start it (as a Docker
    user's LocalStack is): used whatever `--aws` asks for, and `down` leaves it running."""
    state = _own_state(tmp_path)
    settings = _settings(tmp_path, "localstack-reuse", E2E_PORT)
    for kind in ("emulator", "localstack"):
        report = services.up(settings, state, kind)
        assert [(e.kind, e.pid) for e in report.endpoints] == [("localstack", None)]
        assert report.stream == "1 shard(s)" and report.bucket == "exists"
    assert "already running" in aws_endpoint.status(settings, state)[0].describe()
    assert services.down(settings, state) == []
    assert localstack.health(f"http://{HOST}:{E2E_PORT}") is not None


def test_up_starts_localstack_on_a_free_port_and_down_stops_it(tmp_path: Path) -> None:
    state = _own_state(tmp_path)
    settings = _settings(tmp_path, "localstack-started", STARTED_PORT)
    assert not process.port_open(HOST, STARTED_PORT)
    try:
        report = services.up(settings, state, "localstack")
        [endpoint] = report.endpoints
        assert endpoint.kind == "localstack" and endpoint.pid is not None
        assert "started by `up`" in aws_endpoint.status(settings, state)[0].describe()
        assert services.down(settings, state) == [f"LocalStack pid {endpoint.pid}"]
        assert not process.is_running(endpoint.pid) and not process.port_open(HOST, STARTED_PORT)
    finally:
        _stop_if_ours(state, STARTED_PORT)


def test_asking_for_localstack_where_the_emulator_answers_is_an_error(tmp_path: Path) -> None:
    state = _own_state(tmp_path)
    settings = _settings(tmp_path, "localstack-conflict", EMULATOR_PORT)
    try:
        services.up(settings, state)  # the embedded emulator on that port
        with pytest.raises(aws_endpoint.EndpointError, match="not LocalStack"):
            services.up(settings, state, "localstack")
    finally:
        services.down(settings, state)
