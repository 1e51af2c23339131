"""``python -m deploy.local demo`` end to end, in a short run: feature rows reach PostgreSQL and
Parquet reaches S3, the job keeps running afterwards, and ``stop-job`` ends it.

The test has its own stream, bucket, database and job (its config is ``.local/test-demo.json``,
a fixed path so that a job left by an interrupted run is found and stopped next time), on the same
servers as a user's demo: it never touches the demo's data or the demo's job. Its commands read a
copy of sql/ (FEATURE_SQL_DIR), so the feature file it adds is never seen by the jobs other tests
run beside it. Its job is stopped even when the test fails. Takes about two minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from deploy.local import aws, config, demo, job, outputs, services
from deploy.local.state import DEFAULT_STATE

NAME = "test-demo"
DATABASE = "features_test_demo"
CONFIG_PATH = DEFAULT_STATE.root / f"{NAME}.json"
CHECKPOINTS = DEFAULT_STATE.root / f"{NAME}-checkpoints"
SQL_COPY = DEFAULT_STATE.root / f"{NAME}-sql"
# A feature a user adds while the demo runs (copied from user_activity_5m, a 1-minute window).
ADDED = SQL_COPY / "features" / "demo_added_1m.sql"
DEMO_SECONDS = 40
FEATURE = "user_activity_5m"


def _write_config() -> Path:
    """The demo config with the stream, bucket, database and checkpoint folder renamed."""
    groups = json.loads(config.DEFAULT_CONFIG.read_text())
    for group in groups:
        props = group["PropertyMap"]
        if group["PropertyGroupId"] == "job":
            props["checkpoint.dir"] = str(CHECKPOINTS.relative_to(config.REPO_ROOT))
        elif group["PropertyGroupId"] == "source":
            props["stream.arn"] = f"arn:aws:kinesis:us-east-1:000000000000:stream/{NAME}"
        elif group["PropertyGroupId"] == "output":
            props["path"] = f"s3://{NAME}/features"
        elif group["PropertyGroupId"] == "rds":
            props["jdbc.url"] = props["jdbc.url"].rsplit("/", 1)[0] + f"/{DATABASE}"
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    CONFIG_PATH.write_text(json.dumps(groups, indent=2))
    return CONFIG_PATH


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, without what in-process PyFlink tests left in our environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFLINK", "JAVA_TOOL", "FLINK"))}
    env["FEATURE_SQL_DIR"] = str(SQL_COPY)
    return subprocess.run([sys.executable, "-m", "deploy.local", *args, "--config", str(CONFIG_PATH)],
                          cwd=config.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def settings() -> Iterator[config.LocalSettings]:
    loaded = config.load(_write_config())
    job.stop(DEFAULT_STATE, CONFIG_PATH)  # left by an interrupted run: it would read a stale stream
    try:
        services.up(loaded, DEFAULT_STATE)  # conftest.py stops the services afterwards if they were down
        services.reset(loaded)  # so whatever the assertions find, this run wrote
        shutil.rmtree(CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(SQL_COPY, ignore_errors=True)
        shutil.copytree(config.REPO_ROOT / "sql", SQL_COPY)
        yield loaded
    finally:
        job.stop(DEFAULT_STATE, CONFIG_PATH)
        shutil.rmtree(SQL_COPY, ignore_errors=True)


def _data_keys(settings: config.LocalSettings, folder: str) -> list[str]:
    s3 = aws.s3(settings)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=f"{settings.prefix}/{folder}/")
    return [o["Key"] for page in pages for o in page.get("Contents", []) if outputs.is_data_file(o["Key"])]


def test_demo_end_to_end(settings: config.LocalSettings) -> None:
    result = _cli("demo", "--seconds", str(DEMO_SECONDS), "--events", "600", "--users", "20", timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # Rows reached PostgreSQL, from this run's events (the table was emptied by the fixture).
    with psycopg.connect(**settings.postgres.conninfo()) as conn:
        rows, users, windows = conn.execute(
            f"SELECT count(*), count(DISTINCT user_id), count(DISTINCT window_end) FROM {FEATURE}").fetchone()  # type: ignore[misc]
    assert rows > 0 and users > 1 and windows > 1, (rows, users, windows)

    # Parquet reached S3: the feature, the raw archive and the quarantine (the demo sends bad lines).
    feature_keys = _data_keys(settings, FEATURE)
    assert any("/dt=" in key and "/hr=" in key for key in feature_keys), feature_keys
    assert _data_keys(settings, "_raw") and _data_keys(settings, "_quarantine")
    table = outputs.read_parquet(aws.s3(settings), settings.bucket, feature_keys[0])
    assert table.num_rows > 0
    assert {"user_id", "window_start", "window_end", "event_count"} <= set(table.column_names)

    # The demo showed the outputs and said how to look again and how to stop.
    assert f"PostgreSQL {FEATURE}:" in output and "Read back with pyarrow" in output
    for hint in ("Flink web UI      http://localhost:", "demo --watch", "stop-job", "down", "1-hour windows"):
        assert hint in output, hint

    # The job outlives the demo; --watch finds it; stop-job ends it (driver and JVM).
    running = job.find(DEFAULT_STATE, CONFIG_PATH)
    assert running is not None and running.ours
    watch = _cli("demo", "--watch", "--no-produce", "--seconds", "0", timeout=60)
    assert watch.returncode == 0, watch.stdout[-2000:] + watch.stderr[-2000:]

    # A feature file added while the job runs, shipped with the documented command: the new job
    # replays what it needs and the new table fills from the next windows on.
    ADDED.write_text((ADDED.parent / "user_activity_5m.sql").read_text()
                     .replace("INTERVAL '1' MINUTE, INTERVAL '5' MINUTE", "INTERVAL '1' MINUTE, INTERVAL '1' MINUTE"))
    upgraded = _cli("upgrade", timeout=400)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:] + upgraded.stderr[-3000:]
    assert "upgrade: added demo_added_1m" in upgraded.stdout, upgraded.stdout
    running = job.find(DEFAULT_STATE, CONFIG_PATH)
    for _ in range(8):  # its first window closes a minute or two after the upgrade
        fresh = _cli("demo", "--watch", "--seconds", "15", timeout=120)  # fresh events every 5 s
        assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr[-2000:]
        with psycopg.connect(**settings.postgres.conninfo()) as conn:
            added_rows = conn.execute("SELECT count(*) FROM demo_added_1m").fetchone()[0]
        if added_rows:
            break
    assert added_rows > 0
    stop = _cli("stop-job", timeout=60)
    assert f"stopped job pid {running.pid}" in stop.stdout, stop.stdout + stop.stderr
    assert job.find(DEFAULT_STATE, CONFIG_PATH) is None
    with pytest.raises(ProcessLookupError):
        os.killpg(running.pid, 0)  # nothing of the job's process group is left


# --- pure parts (no services) -------------------------------------------------------------------

def test_retag_gives_each_batch_its_own_txids_and_keeps_resends_identical(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    original = ['{"txid": "t-1", "user_id": "u-1"}', '{"txid": "t-1", "user_id": "u-1"}',
                "ERROR malformed payload #1", '{"user_id": "u-2"}']
    path.write_text("\n".join(original) + "\n")
    demo.retag(path, "demo1-3-")
    lines = path.read_text().splitlines()
    assert lines[0] == lines[1] == '{"txid": "demo1-3-t-1", "user_id": "u-1"}'
    assert lines[2:] == original[2:]  # not JSON, or no txid: sent exactly as generated


def test_each_config_has_its_own_pid_file_and_the_default_uses_job_pid(tmp_path: Path) -> None:
    default = job.files_for(DEFAULT_STATE, config.DEFAULT_CONFIG)
    assert default.pid_file == DEFAULT_STATE.run / "job.pid"
    assert default.log_file == DEFAULT_STATE.logs / "job.log"
    other = job.files_for(DEFAULT_STATE, tmp_path / "local.json")
    assert other.pid_file != default.pid_file and other.pid_file.parent == DEFAULT_STATE.run


def test_format_rows_folds_the_window_into_one_column() -> None:
    lines = demo.format_rows(["user_id", "window_start", "window_end", "event_count", "amount_sum"],
                             [("u-1", datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 10, 5), 12, 1234.5),
                              ("u-22", datetime(2026, 1, 1, 10, 1), datetime(2026, 1, 1, 10, 6), 3, None)])
    assert lines[0].split() == ["user_id", "window", "(UTC)", "event_count", "amount_sum"]
    assert lines[1].split() == ["u-1", "10:00-10:05", "12", "1,234.50"]
    assert lines[2].split() == ["u-22", "10:01-10:06", "3", "-"]
