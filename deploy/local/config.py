"""What the local services need, read from the job's own config (Managed Flink property-group JSON)
through jobs.definitions.config, so the services and the job cannot disagree on a name, port or password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobs.definitions import config as job_config
from jobs.definitions.config import ConfigError
from jobs.postgres.connection import connection_kwargs

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "config" / "local.json"

__all__ = ["ConfigError", "DEFAULT_CONFIG", "LocalSettings", "PostgresSettings", "REPO_ROOT", "load"]


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    user: str
    password: str

    def conninfo(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (TCP, like the job's JDBC sink)."""
        info: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": self.database,
                                "user": self.user, "password": self.password, "connect_timeout": 5}
        info.update(overrides)
        return info


@dataclass(frozen=True)
class LocalSettings:
    region: str
    kinesis_endpoint: str | None
    stream_name: str
    shard_count: int
    s3_endpoint: str | None
    bucket: str
    prefix: str
    s3_path_style: bool
    postgres: PostgresSettings
    source_file: Path
    checkpoint_dir: Path | None  # the job's retained checkpoints (local folder), if any


def load(path: Path | str = DEFAULT_CONFIG) -> LocalSettings:
    """Validated with the job's own rules; errors name the property group and key."""
    path = Path(path)
    config = job_config.load(path, "run")
    bucket_url = urlparse(config.get("output", "path"))
    if bucket_url.scheme not in ("s3", "s3a"):
        raise ConfigError(f"{path}: property group 'output' key 'path': the local services need an s3:// path")
    endpoint = config.groups["source"].get("aws.endpoint")  # validated; defaults to AWS's
    kinesis_endpoint = None if job_config.is_aws_endpoint(endpoint) else endpoint
    db = connection_kwargs(config, config.get("rds", "password"))
    return LocalSettings(
        region=config.get("source", "aws.region"),
        kinesis_endpoint=kinesis_endpoint,
        stream_name=config.get("source", "stream.name"),
        shard_count=config.get_int("source", "shard.count"),
        # One emulator serves both, so S3 falls back to the Kinesis endpoint when unset.
        s3_endpoint=config.get("output", "s3.endpoint") or kinesis_endpoint,
        bucket=bucket_url.netloc,
        prefix=bucket_url.path.strip("/"),
        s3_path_style=config.get("output", "s3.path.style.access") == "true",
        postgres=PostgresSettings(host=db["host"], port=int(db["port"]), database=db["dbname"],
                                  user=db["user"], password=db["password"]),
        source_file=path,
        checkpoint_dir=_local_folder(config.checkpoint_uri()),
    )


def _local_folder(uri: str | None) -> Path | None:
    return Path(urlparse(uri).path) if uri and uri.startswith("file:") else None
