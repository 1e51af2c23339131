"""The real local stack for end-to-end tests: a config of their own, the job as a real process,
and readers for what it wrote to PostgreSQL and S3.

Each test names its own stream, bucket and database, so tests never touch a user's demo data.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from deploy.local import config as local_config
from deploy.local import services
from deploy.local.state import DEFAULT_STATE

ROOT = Path(__file__).resolve().parents[2]


def write_config(folder: Path, name: str, *, shards: int = 1, parallelism: int = 1,
                 extra: dict[str, dict[str, str]] | None = None) -> Path:
    """The shipped local config, with this test's stream, bucket and database, fast checkpoints,
    a short idle timeout and reading from the start of the stream; ``extra`` sets more keys."""
    groups = json.loads(local_config.DEFAULT_CONFIG.read_text())
    overrides: dict[str, dict[str, str]] = {
        "job": {"parallelism": str(parallelism), "checkpoint.interval.seconds": "2", "counters.log.interval.seconds": "2",
                "checkpoint.dir": (folder / "checkpoints").as_uri()},
        "source": {"stream.arn": f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}",
                   "shard.count": str(shards), "init.position": "TRIM_HORIZON"},
        "events": {"idle.timeout.seconds": "5"},
        "output": {"path": f"s3://{name}/features"},
    }
    for group_id, values in (extra or {}).items():
        overrides.setdefault(group_id, {}).update(values)
    for group in groups:
        group["PropertyMap"].update(overrides.get(group["PropertyGroupId"], {}))
        if group["PropertyGroupId"] == "rds":
            url = group["PropertyMap"]["jdbc.url"]
            group["PropertyMap"]["jdbc.url"] = url.rsplit("/", 1)[0] + "/" + name.replace("-", "_")
    path = folder / f"{name}.json"
    path.write_text(json.dumps(groups, indent=2))
    return path


def start_services(config: Path, aws_kind: str = "emulator") -> local_config.LocalSettings:
    """Reuse or start the Kinesis+S3 endpoint (``aws_kind`` on a free port) and PostgreSQL; give
    this test an empty stream, bucket, database."""
    settings = local_config.load(config)
    services.up(settings, DEFAULT_STATE, aws_kind)
    services.reset(settings)
    return settings


def clean_env(*, drop_aws: bool = False, **extra: str) -> dict[str, str]:
    """This process's environment without what ties a child to this process's JVM or jar: the
    PyFlink gateway (and its "gateway disabled" flag, set after a Python UDF ran here), JVM
    options, Flink folders, an explicit jar or PYTHONPATH; AWS credentials too if asked."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYFLINK", "JAVA_TOOL", "FLINK")) and k not in ("FEATURE_JOB_JAR", "PYTHONPATH")
           and not (drop_aws and k.startswith("AWS_"))}
    env.update(extra)
    return env


@dataclass
class JobProcess:
    """`python -m jobs.feature_job run` as a user starts it, in its own process group."""

    config: Path
    log: Path
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] | None = None  # added to the cleaned environment (e.g. FLINK_LOG_DIR)
    process: subprocess.Popen | None = None

    def start(self) -> "JobProcess":
        env = clean_env(**(self.env or {}))
        extra_jvm_args = os.environ.get("JOB_JVM_ARGS")  # set by tests/conftest.py, not by the benchmarks
        if extra_jvm_args:
            env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} {extra_jvm_args}".strip()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobs.feature_job", "run", "--config", str(self.config), *self.extra_args],
            cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def crash(self) -> None:
        """SIGKILL the job's whole process group (Python and JVM): no cleanup, no final checkpoint."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def check_alive(self) -> None:
        if self.process and self.process.poll() is not None:
            raise AssertionError(f"the job exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        useful = [line for line in text.splitlines() if not line.lstrip().startswith("at ")]
        return "\n".join(useful[-lines:])


def wait_for(what: str, condition: Callable[[], bool], job: JobProcess, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.check_alive()
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; job log:\n{job.tail()}")


def postgres_rows(settings: local_config.LocalSettings, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(**settings.postgres.conninfo()) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names come from the tests
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def s3_rows(settings: local_config.LocalSettings, folder: str) -> list[dict[str, Any]]:
    """Committed Parquet rows under PREFIX/<folder> (in-progress files are hidden and skipped)."""
    endpoint = settings.s3_endpoint or ""
    filesystem = pafs.S3FileSystem(access_key="test", secret_key="test", region=settings.region,
                                   endpoint_override=endpoint.split("://", 1)[-1],
                                   scheme=endpoint.split("://", 1)[0] if endpoint else "https")
    path = f"{settings.bucket}/{settings.prefix}/{folder}"
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    return ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive").to_table().to_pylist()


def same_value(got: Any, want: Any) -> bool:
    """Equal; doubles to the last bits (Flink adds partial sums in arrival order): within 1e-9, both
    relative and absolute."""
    if got == want:
        return True
    return (isinstance(got, float) and isinstance(want, float)
            and abs(got - want) < 1e-9 and math.isclose(got, want, rel_tol=1e-9))


def assert_reads_match(config: Path, stored: dict[str, dict[tuple, dict]], users: list[str], moments: list,
                       sql_dir: Path | None = None) -> None:
    """Online (PostgreSQL) and offline (Parquet) reads, as complete, of every user at every moment
    give the window and values the ``stored`` rows of each group say (tests/oracle.py's rule)."""
    from jobs.reads.serving import DEFAULT_SQL_DIR, OnlineStore
    from jobs.reads.training import OfflineStore
    from tests import oracle

    sql_dir = sql_dir or DEFAULT_SQL_DIR
    labels = [{"user_id": user, "timestamp": moment} for moment in moments for user in users]
    training = iter(OfflineStore.from_config_file(config, sql_dir).training_set(labels, as_complete=True).to_pylist())
    with OnlineStore.from_config_file(config, sql_dir) as online:
        for moment in moments:
            served = online.get_features(users, as_of=moment, as_complete=True)
            for user in users:
                offline = next(training)
                for name, rows in stored.items():
                    spec = online.specs[name]
                    end, values = oracle.features_as_of(rows, user, moment, spec.size, spec.slide, spec.neutral)
                    assert served["groups"][name]["window_end"] == offline[f"{name}.window_end"] == end, (name, moment)
                    for column in spec.columns:
                        want = None if values is None else values[column]
                        for got in (served["users"][user][name][column], offline[f"{name}.{column}"]):
                            assert same_value(got, want), (name, column, user, moment, got, want)
