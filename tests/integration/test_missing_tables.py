"""`run` checks the PostgreSQL tables before it submits the job, instead of failing on every JDBC
flush (and restarting forever) when `migrate` was not run: locally it creates them (the same
migration), in the cloud (Managed Flink, AWS endpoints) it stops with one line saying which are
missing and the command to run; a change migrate refuses (a changed type or key) stops both.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from pyflink.table import StatementSet

from jobs import feature_job
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

FEATURE_TABLES = ("user_activity_1h", "user_activity_5m")
MIGRATE = "python -m jobs.feature_job migrate --config FILE"


def _fresh_database(settings) -> None:
    """Nothing migrated: no table at all (a reused test database may hold an earlier run's)."""
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        for (table,) in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall():
            connection.execute(f"DROP TABLE {table}")


def _tables(settings) -> set[str]:
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        return {row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def _rows(settings, table: str) -> list[dict]:
    return postgres_rows(settings, table) if table in _tables(settings) else []


def _error_lines(captured: str) -> list[str]:
    """What the user reads on stderr (the job's log lines may be there too, with their timestamps)."""
    return [line for line in captured.splitlines() if line.startswith("error:")]


def _as_aws(config: Path) -> Path:
    """The same config with AWS's own endpoints (as deploy/config/aws.example.json), PostgreSQL still local."""
    groups = json.loads(config.read_text())
    for group in groups:
        if group["PropertyGroupId"] == "source":
            group["PropertyMap"]["aws.endpoint"] = ""
        if group["PropertyGroupId"] == "output":
            group["PropertyMap"]["s3.endpoint"] = ""
    path = config.with_name(f"aws-{config.name}")
    path.write_text(json.dumps(groups))
    return path


@pytest.fixture
def submitted(monkeypatch) -> list[StatementSet]:
    """Jobs `run` submitted in this process (none are: the test stops there)."""
    calls: list[StatementSet] = []

    def execute(statement_set):
        calls.append(statement_set)
        raise AssertionError("the job was submitted")

    monkeypatch.setattr(StatementSet, "execute", execute)
    return calls


def test_a_local_run_without_migrate_creates_the_tables_and_rows_arrive(tmp_path):
    config = write_config(tmp_path, "keys-run")
    settings = start_services(config)
    _fresh_database(settings)
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=23, events=300, users=5, duplicate_share=0.1, start=now - timedelta(hours=3))
             if line.strip()]
    expected = oracle.replay(lines, now, DELAY)
    expected_5m, expected_1h = oracle.user_activity_5m(expected), oracle.user_activity_1h(expected)
    job = JobProcess(config, tmp_path / "job.log").start()
    try:
        _produce(settings, lines + [_flush_event(now)], tmp_path)
        wait_for("every window in PostgreSQL", lambda: len(_rows(settings, "user_activity_5m")) >= len(expected_5m)
                 and len(_rows(settings, "user_activity_1h")) >= len(expected_1h), job)
    finally:
        job.stop()
    assert_matches(postgres_rows(settings, "user_activity_5m"), expected_5m)
    assert_matches(postgres_rows(settings, "user_activity_1h"), expected_1h)
    created = [line for line in job.log.read_text().splitlines() if "created in PostgreSQL" in line]
    assert len(created) == 1, created
    assert all(f"table {name}" in created[0] for name in (*FEATURE_TABLES, "feature_progress")), created


def test_in_the_cloud_a_missing_table_stops_the_start_with_one_line(tmp_path, capsys, submitted):
    config = write_config(tmp_path, "keys-cloud")
    settings = start_services(config)
    _fresh_database(settings)
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        connection.execute("CREATE TABLE bystander (n int)")  # unrelated tables do not matter
    assert feature_job.main(["run", "--config", str(_as_aws(config))]) == 2
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    error = errors[0]
    assert error.startswith("error: PostgreSQL at 127.0.0.1:")
    assert all(f"table {name}" in error for name in (*FEATURE_TABLES, "feature_progress")), error
    assert f"`{MIGRATE}`" in error
    assert not submitted
    assert _tables(settings) == {"bystander"}  # nothing created in the cloud


@pytest.mark.parametrize("where", ["local", "cloud"])
def test_an_unsafe_difference_is_refused_with_the_migration_message(tmp_path, capsys, submitted, where):
    config = write_config(tmp_path, "keys-unsafe")
    settings = start_services(config)
    _fresh_database(settings)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        connection.execute("ALTER TABLE user_activity_5m ALTER COLUMN event_count TYPE integer")
        connection.execute("DROP TABLE feature_progress")
    capsys.readouterr()
    assert feature_job.main(["run", "--config", str(config if where == "local" else _as_aws(config))]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: table user_activity_5m column event_count: integer in PostgreSQL, bigint in the feature SQL; change it "
        "by hand (ALTER TABLE user_activity_5m ALTER COLUMN event_count TYPE bigint) or use a new column name"]
    assert not submitted
    assert "feature_progress" not in _tables(settings)  # refused before anything changed
