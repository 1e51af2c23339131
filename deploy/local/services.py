"""What ``up``, ``down``, ``status`` and ``reset`` do, composed from the single-purpose modules."""

from __future__ import annotations

import fcntl
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from deploy.local import aws, aws_endpoint, job, postgres, resources
from deploy.local.config import LocalSettings
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    endpoints: list[aws_endpoint.EndpointStatus]
    postgres: postgres.PostgresStatus
    stream: str  # "2 shard(s)", "missing" or "unreachable"
    bucket: str  # "exists", "missing" or "unreachable"

    def lines(self, settings: LocalSettings, state: StateDirs) -> list[str]:
        by_url = {e.url: e for e in self.endpoints}

        def where(url: str | None) -> str:
            if not url:
                return "AWS (default endpoint)"
            found = by_url.get(url.rstrip("/"))
            return found.describe() if found else url

        pg = settings.postgres
        return [
            f"Kinesis   {where(settings.kinesis_endpoint)}  stream {settings.stream_name}: {self.stream}",
            f"S3        {where(settings.s3_endpoint)}  s3://{settings.bucket}/{settings.prefix}: bucket {self.bucket}",
            f"Postgres  {self.postgres.describe()}  jdbc:postgresql://{pg.host}:{pg.port}/{pg.database}"
            f"  user {pg.user}",
            f"State     {state.root}  (logs: {state.logs}, {state.postgres}/postgres.log)",
        ]


def _stream_and_bucket(settings: LocalSettings) -> tuple[str, str]:
    # Down endpoints must not fail `status`: report them as unreachable instead.
    try:
        shards = resources.stream_shard_count(aws.kinesis(settings, timeout=3, retries=1), settings.stream_name)
        stream = "missing" if shards is None else f"{shards} shard(s)"
    except Exception as exc:
        log.debug("stream lookup failed: %s", exc)
        stream = "unreachable"
    try:
        bucket = "exists" if resources.bucket_exists(aws.s3(settings, timeout=3, retries=1), settings.bucket) \
            else "missing"
    except Exception as exc:
        log.debug("bucket lookup failed: %s", exc)
        bucket = "unreachable"
    return stream, bucket


@contextmanager
def _one_at_a_time(state: StateDirs) -> Iterator[None]:
    """Serializes ``up`` across processes (two terminals, parallel test workers): otherwise both
    see a port free and both start a server on it."""
    with (state.run / "up.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(settings: LocalSettings, state: StateDirs, aws_kind: str = "emulator") -> Report:
    """``aws_kind``: what a free Kinesis+S3 port gets (aws_endpoint.CHOICES)."""
    state.ensure()
    with _one_at_a_time(state):
        endpoints = aws_endpoint.ensure(settings, state, aws_kind)
        pg_status = postgres.Server(state, settings.postgres).start()
    if resources.ensure_stream(aws.kinesis(settings), settings.stream_name, settings.shard_count):
        # A new stream (the emulator keeps streams in memory, so after `down` too): checkpoints
        # of the old one would resume at sequence numbers this stream never had.
        _forget_checkpoints(settings)
    resources.ensure_bucket(aws.s3(settings), settings.bucket, settings.region)
    return Report(endpoints, pg_status, *_stream_and_bucket(settings))


def _forget_checkpoints(settings: LocalSettings) -> None:
    if settings.checkpoint_dir and settings.checkpoint_dir.is_dir():
        shutil.rmtree(settings.checkpoint_dir)
        log.info("removed the job's checkpoints in %s (they belong to an older stream)", settings.checkpoint_dir)


def status(settings: LocalSettings, state: StateDirs) -> Report:
    return Report(aws_endpoint.status(settings, state), postgres.Server(state, settings.postgres).status(),
                  *_stream_and_bucket(settings))


def down(settings: LocalSettings, state: StateDirs) -> list[str]:
    """Stop what ``up`` started (pid files); reused services keep running.

    Jobs the demo started go first: without their endpoints they would only fail and restart."""
    stopped = [f"job pid {pid}" for pid in job.stop_all(state)]
    stopped += aws_endpoint.stop(state)
    pg_pid = postgres.Server(state, settings.postgres).stop()
    if pg_pid is not None:
        stopped.append(f"postgres pid {pg_pid}")
    return stopped


@dataclass(frozen=True)
class ResetResult:
    objects_deleted: int
    tables_truncated: list[str]


def reset(settings: LocalSettings) -> ResetResult:
    """Empty the stream (recreate), the bucket, every table in ``public`` and the job's retained
    checkpoints: a clean run."""
    resources.recreate_stream(aws.kinesis(settings), settings.stream_name, settings.shard_count)
    s3 = aws.s3(settings)
    resources.ensure_bucket(s3, settings.bucket, settings.region)
    deleted = resources.empty_bucket(s3, settings.bucket)
    tables = postgres.truncate_public_tables(settings.postgres)
    _forget_checkpoints(settings)  # positions in the old stream, state of the old data
    return ResetResult(deleted, tables)
