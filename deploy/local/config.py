"""Read what the local services need from the job's config (Managed Flink property-group JSON).

The same file configures the job, so the services and the job cannot disagree on a name or port.
Errors name the property group and key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "config" / "local.json"


class ConfigError(ValueError):
    """The config file is missing a group/key the local services need, or a value is malformed."""


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


def _groups(path: Path) -> dict[str, dict[str, str]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a list of property groups")
    groups: dict[str, dict[str, str]] = {}
    for entry in raw:
        if not isinstance(entry, dict) or "PropertyGroupId" not in entry:
            raise ConfigError(f"{path}: every entry needs PropertyGroupId and PropertyMap")
        groups[str(entry["PropertyGroupId"])] = {str(k): str(v) for k, v in (entry.get("PropertyMap") or {}).items()}
    return groups


def _get(groups: dict[str, dict[str, str]], group: str, key: str, path: Path,
         default: str | None = None) -> str:
    value = groups.get(group, {}).get(key, "")
    if value.strip():
        return value.strip()
    if default is not None:
        return default
    raise ConfigError(f"{path}: property group '{group}' needs key '{key}'")


def stream_name_from_arn(arn: str) -> str:
    """``arn:aws:kinesis:<region>:<account>:stream/<name>`` -> ``<name>`` (a bare name passes)."""
    return arn.rsplit("stream/", 1)[-1] if ":stream/" in arn else arn


def parse_s3_path(path: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); s3a:// is accepted as Flink accepts it."""
    parsed = urlparse(path)
    if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
        raise ValueError(f"not an s3:// path: {path!r}")
    return parsed.netloc, parsed.path.strip("/")


def parse_jdbc_url(url: str) -> tuple[str, int, str]:
    """``jdbc:postgresql://host:port/db?...`` -> (host, port, db)."""
    if not url.startswith("jdbc:postgresql://"):
        raise ValueError(f"not a jdbc:postgresql:// URL: {url!r}")
    parsed = urlparse(url[len("jdbc:"):])
    database = parsed.path.strip("/")
    if not parsed.hostname or not database:
        raise ValueError(f"JDBC URL needs a host and a database: {url!r}")
    return parsed.hostname, parsed.port or 5432, database


def load(path: Path | str = DEFAULT_CONFIG) -> LocalSettings:
    path = Path(path)
    groups = _groups(path)

    def get(group: str, key: str, default: str | None = None) -> str:
        return _get(groups, group, key, path, default)

    try:
        shard_count = int(get("source", "shard.count", "1"))
        bucket, prefix = parse_s3_path(get("output", "path"))
        host, port, database = parse_jdbc_url(get("rds", "jdbc.url"))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if shard_count < 1:
        raise ConfigError(f"{path}: property group 'source' key 'shard.count' must be >= 1")
    kinesis_endpoint = get("source", "aws.endpoint", "") or None
    return LocalSettings(
        region=get("source", "aws.region", "us-east-1"),
        kinesis_endpoint=kinesis_endpoint,
        stream_name=stream_name_from_arn(get("source", "stream.arn")),
        shard_count=shard_count,
        # One emulator serves both, so S3 falls back to the Kinesis endpoint when unset.
        s3_endpoint=get("output", "s3.endpoint", "") or kinesis_endpoint,
        bucket=bucket,
        prefix=prefix,
        s3_path_style=get("output", "s3.path.style.access", "true").lower() == "true",
        postgres=PostgresSettings(host=host, port=port, database=database,
                                  user=get("rds", "username"), password=get("rds", "password")),
        source_file=path,
    )
