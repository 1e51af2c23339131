"""The PostgreSQL password rotated in Secrets Manager while the job runs (the local emulator serves
Secrets Manager on the Kinesis endpoint): every window still reaches PostgreSQL, equal to the
oracle, without a restart loop; an OnlineStore opened before the rotation still reads.

The test has its own role (created by `up` from the config, as RDS would have it), so the shared
`features` user's password is never changed. As in tests/integration: events dated three hours
ago, then a fresh flush event that moves the watermark past all their windows.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import psycopg
from psycopg import sql

from jobs import feature_job
from jobs.reads.serving import OnlineStore
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

NAME = "secret-rotation"
ROLE = "secret_rotation"
FEATURES = {"user_activity_5m": oracle.user_activity_5m, "user_activity_1h": oracle.user_activity_1h}


def _with_rds(config: Path, **rds: str) -> Path:
    groups = json.loads(config.read_text())
    next(g for g in groups if g["PropertyGroupId"] == "rds")["PropertyMap"].update(rds)
    config.write_text(json.dumps(groups, indent=2))
    return config


def _rotate(settings, secrets_manager, arn: str, new_password: str):
    """What a rotation does (the database first, then the secret), then every open connection of
    the role is cut, so the job and the readers must log in again. Returns the new settings."""
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        connection.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(new_password)))
        secrets_manager.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": ROLE, "password": new_password}))
        cut = connection.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE usename = %s AND pid <> pg_backend_pid()", (ROLE,)).fetchone()[0]
    assert cut >= 1, "the job held no PostgreSQL connection to cut"
    return dataclasses.replace(settings, postgres=dataclasses.replace(settings.postgres, password=new_password))


def _restarts(flink_logs: Path) -> int:
    text = "".join(path.read_text(errors="replace") for path in flink_logs.rglob("*") if path.is_file())
    return text.count("switched from state RUNNING to RESTARTING")


def test_a_rotated_password_is_picked_up_while_the_job_runs(tmp_path, monkeypatch, caplog):
    first, second = "pw-" + secrets.token_hex(12), "pw-" + secrets.token_hex(12)
    config = _with_rds(write_config(tmp_path, NAME), username=ROLE, password=first)
    settings = start_services(config)  # creates the role with the first password, and its database
    endpoint = settings.kinesis_endpoint
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint}
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    secrets_manager = boto3.client("secretsmanager", region_name=settings.region)
    arn = secrets_manager.create_secret(Name=f"{NAME}/{secrets.token_hex(4)}",
                                        SecretString=json.dumps({"username": ROLE, "password": first}))["ARN"]
    try:
        _with_rds(config, password="", **{"password.secret.arn": arn})  # from here on only the secret
        assert feature_job.main(["migrate", "--config", str(config)]) == 0
        now = datetime.now(timezone.utc)
        lines = [line for line in generate(seed=61, events=3000, users=20, duplicate_share=0.15,
                                           start=now - timedelta(hours=3)) if line.strip()]
        expected = oracle.replay(lines, now, DELAY)
        half = len(lines) // 2
        flink_logs = tmp_path / "flink-logs"
        store = OnlineStore.from_config_file(config)
        job = JobProcess(config, tmp_path / "job.log", env={**aws, "FLINK_LOG_DIR": str(flink_logs)}).start()
        try:
            _produce(settings, lines[:half], tmp_path)
            wait_for("rows written with the first password", lambda: len(postgres_rows(settings, "user_activity_5m")) > 0, job)
            settings = _rotate(settings, secrets_manager, arn, second)
            _produce(settings, lines[half:] + [_flush_event(now)], tmp_path)
            wait_for("every window in PostgreSQL after the rotation", lambda: all(
                len(postgres_rows(settings, feature)) >= len(rows(expected)) for feature, rows in FEATURES.items()), job,
                timeout=240)
            job.check_alive()
            read = store.get_features(["u-1"])  # its pooled connections were cut: new ones need the new password
        finally:
            job.stop()
            store.close()
    finally:
        secrets_manager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    for feature, rows in FEATURES.items():
        assert_matches(postgres_rows(settings, feature), rows(expected))
    assert read["groups"]["user_activity_5m"]["window_end"] is not None
    assert "the secret has changed (rotated)" in caplog.text  # the reader's old password failed, the new one worked
    assert _restarts(flink_logs) <= 1, "the job went into a restart loop"
    logs = [tmp_path / "job.log", *(path for path in flink_logs.rglob("*") if path.is_file())]
    leaked = [str(path) for path in logs if any(pw.encode() in path.read_bytes() for pw in (first, second))]
    assert not leaked, "a database password is in these logs"
