"""Job configuration in Managed Flink's property-group format.

The same JSON list of ``{"PropertyGroupId": ..., "PropertyMap": {...}}`` is read from
``/etc/flink/application_properties.json`` on Managed Flink and from ``--config FILE`` locally.
Every key the job knows is declared once in ``KEYS`` with its default and check, so a typo or a bad
value fails at start with a message naming the group and the key, before any data is read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from jobs.definitions import replay

MANAGED_FLINK_CONFIG = Path("/etc/flink/application_properties.json")
# Tests and the local cluster only (deploy/local/cluster.py): where a job started without --config
# reads its runtime properties instead of MANAGED_FLINK_CONFIG, which they cannot write to.
# Managed Flink never sets it.
PROPERTIES_FILE_OVERRIDE = "FEATURE_JOB_TEST_PROPERTIES_FILE"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The SQL folder every command reads unless given --sql-dir: FEATURE_SQL_DIR if set (a copy of sql/
# to try features in without touching the checkout's, as tests/integration/test_demo.py does so
# that other jobs running beside it never see its added file), else the project's sql/.
DEFAULT_SQL_DIR = Path(os.environ.get("FEATURE_SQL_DIR") or PROJECT_ROOT / "sql")

PropertyGroups = dict[str, dict[str, str]]


class ConfigError(ValueError):
    """A configuration problem; the message names the file, property group and key."""


def is_aws_endpoint(url: str) -> bool:
    """An AWS service endpoint, as opposed to LocalStack or an emulator (empty means AWS's own)."""
    return not url or url.rstrip("/").endswith(".amazonaws.com")


def _positive_int(value: str) -> str | None:
    return None if re.fullmatch(r"[1-9][0-9]{0,8}", value) else "must be a positive integer"


def _non_negative_int(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9]{1,9}", value) else "must be a non-negative integer"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _any(value: str) -> str | None:
    return None


def _boolean(value: str) -> str | None:
    return None if value in ("true", "false") else "must be true or false"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _stream_arn(value: str) -> str | None:
    if re.fullmatch(r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[A-Za-z0-9_.-]{1,128}", value):
        return None
    return "must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"


def _iso_timestamp_or_empty(value: str) -> str | None:
    if not value or re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z", value):
        return None
    return "must be empty or an ISO-8601 UTC time like 2026-01-01T00:00:00Z"


def _url_or_empty(value: str) -> str | None:
    return None if not value or re.fullmatch(r"https?://\S+", value) else "must be empty or an http(s) URL"


def _jdbc_postgres_url(value: str) -> str | None:
    return None if value.startswith("jdbc:postgresql://") else "must start with jdbc:postgresql://"


def _output_path(value: str) -> str | None:
    if re.fullmatch(r"(s3|s3a|file)://\S+", value) and not value.endswith("/"):
        return None
    return "must be an s3://BUCKET/PREFIX or file:///DIR URI without a trailing slash"


@dataclass(frozen=True)
class Key:
    """One configuration key: its default (None = required) and its check."""

    group: str
    name: str
    default: str | None
    check: Callable[[str], str | None]
    doc: str


KEYS: tuple[Key, ...] = (
    Key("job", "name", "feature-pipeline", _non_empty, "Flink job name"),
    Key("job", "parallelism", "1", _positive_int,
        "operator parallelism: at least the open shard count (run checks each shard gets a source subtask of its own)"),
    Key("job", "checkpoint.interval.seconds", "10", _positive_int, "local runs only; Managed Flink uses its CheckpointConfiguration"),
    Key("job", "counters.log.interval.seconds", "60", _positive_int, "local runs: how often the counters are logged"),
    Key("job", "checkpoint.dir", "", _any,
        "local runs only: folder (relative to the project) or URI where checkpoints are kept and resumed from"),
    Key("source", "stream.arn", None, _stream_arn, "Kinesis stream to read"),
    Key("source", "aws.region", None, _non_empty, "region of the stream"),
    Key("source", "aws.endpoint", "", _url_or_empty, "Kinesis endpoint; empty = the region's AWS endpoint"),
    Key("source", "shard.count", "1", _positive_int, "shards to create locally"),
    Key("source", "init.position", "LATEST", _one_of("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"), "where a fresh start reads from"),
    Key("source", "init.timestamp", "", _iso_timestamp_or_empty, "start time when init.position is AT_TIMESTAMP"),
    Key("source", "allow.shared.subtasks", "false", _boolean,
        "true: start even when a source subtask reads several open shards (some events are late while it catches up)"),
    Key("events", "watermark.delay.seconds", "30", _non_negative_int, "bounded out-of-orderness of event_time"),
    Key("events", "idle.timeout.seconds", "60", _positive_int, "a silent shard stops holding the watermark back after this"),
    Key("events", "future.skew.seconds", "300", _non_negative_int, "events dated further than this after their arrival are quarantined"),
    Key("events", "dedup.ttl.hours", "24", _positive_int, "a txid is remembered this long; a later re-send counts again"),
    Key("features", "fresh.interval.seconds", "5", _non_negative_int,
        "fresh slices (jobs/definitions/fresh_slices.py) are written this often while open; 0 turns them off"),
    Key("rds", "jdbc.url", None, _jdbc_postgres_url, "PostgreSQL JDBC URL"),
    Key("rds", "username", None, _non_empty, "PostgreSQL user"),
    Key("rds", "password", "", _any, "local only; in the cloud use password.secret.arn"),
    Key("rds", "password.secret.arn", "", _any, "Secrets Manager secret holding the password"),
    Key("rds", "batch.size", "500", _positive_int, "rows per JDBC batch"),
    Key("rds", "flush.interval.ms", "1000", _non_negative_int, "max time a row waits in the JDBC buffer"),
    Key("rds", "max.retries", "3", _non_negative_int, "JDBC write retries before the job fails and restarts"),
    Key("rds", "retention.days", "7", _positive_int, "jobs.reads.serving prune deletes window rows that ended longer ago"),
    Key("rds", "pool.size", "4", _positive_int, "jobs.reads.serving: most PostgreSQL connections one reader process opens"),
    Key("output", "path", None, _output_path, "root of the offline copy: s3://BUCKET/PREFIX"),
    Key("output", "s3.endpoint", "", _url_or_empty, "S3 endpoint for local runs; empty = AWS"),
    Key("output", "s3.path.style.access", "false", _boolean, "path-style S3 URLs (S3-compatible emulators)"),
    Key("output", "partition.commit.delay.minutes", "120", _non_negative_int,
        "a feature's hour partition gets _SUCCESS once the watermark is this far past the hour's start; "
        "keep it >= 60 + the longest window in minutes"),
)

KNOWN_GROUPS = frozenset(key.group for key in KEYS)

# The groups each command needs; keys of other groups are still checked when present.
REQUIRED_GROUPS: Mapping[str, tuple[str, ...]] = {
    "run": ("job", "source", "events", "features", "rds", "output"),
    "validate": ("job", "source", "events", "features", "rds", "output"),
    "explain": ("job", "source", "events", "features", "rds", "output"),
    "migrate": ("job", "source", "events", "features", "rds", "output"),
    "fingerprint": ("job", "source", "events", "features", "rds", "output"),
    "backfill": ("job", "events"),
    "serve": ("rds",),     # jobs.reads.serving: online reads and pruning
    "train": ("output",),  # jobs.reads.training: point-in-time training sets from the Parquet copy
}


def parse_property_groups(text: str, origin: str) -> PropertyGroups:
    """Parse the Managed Flink JSON format into {group: {key: value}}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{origin}: not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise ConfigError(f"{origin}: expected a JSON list of property groups")
    groups: PropertyGroups = {}
    for position, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("PropertyGroupId"), str):
            raise ConfigError(f"{origin}: entry {position} needs a string PropertyGroupId")
        group_id = entry["PropertyGroupId"]
        properties = entry.get("PropertyMap", {})
        if not isinstance(properties, dict):
            raise ConfigError(f"{origin}: property group '{group_id}': PropertyMap must be an object")
        if group_id in groups:
            raise ConfigError(f"{origin}: property group '{group_id}' appears twice")
        for key, value in properties.items():
            if not isinstance(value, str):
                raise ConfigError(
                    f"{origin}: property group '{group_id}' key '{key}': values must be strings "
                    f"(Managed Flink stores them as strings), got {json.dumps(value)}"
                )
        groups[group_id] = dict(properties)
    return groups


@dataclass(frozen=True)
class Config:
    """Validated configuration: every known key present, defaults filled in, plus derived keys."""

    groups: PropertyGroups
    origin: str

    def get(self, group: str, key: str) -> str:
        try:
            return self.groups[group][key]
        except KeyError:
            raise ConfigError(f"{self.origin}: property group '{group}' has no key '{key}'") from None

    def get_int(self, group: str, key: str) -> int:
        return int(self.get(group, key))

    def checkpoint_uri(self) -> str | None:
        """job.checkpoint.dir as a URI; a plain path is relative to the project root."""
        value = self.get("job", "checkpoint.dir")
        if not value or re.match(r"[a-z][a-z0-9+.-]*://", value):
            return value or None
        return (PROJECT_ROOT / value).resolve().as_uri()

    def cut(self) -> replay.Cut:
        """The replay upgrade's cut-over this job runs with (none: write every window)."""
        return replay.Cut.from_properties(self.groups.get(replay.GROUP, {}))

    def with_cut(self, cut: replay.Cut) -> "Config":
        """A copy that runs with this cut-over (and reads from its start when it has no state)."""
        groups = {name: dict(values) for name, values in self.groups.items()}
        groups[replay.GROUP] = cut.to_properties()
        _derive_source_keys(groups["source"], groups[replay.GROUP].get("start.timestamp", ""))
        return Config(groups, self.origin)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, str]]) -> "Config":
        """A copy with values set by the command line (for example backfill's input and output)."""
        groups = {name: dict(values) for name, values in self.groups.items()}
        for group, values in overrides.items():
            groups.setdefault(group, {}).update(values)
        return Config(groups, self.origin)


def validate(groups: PropertyGroups, command: str, origin: str) -> Config:
    """Check every known key, fill in defaults and derived keys; unknown groups are left alone
    (Managed Flink adds its own, such as kinesis.analytics.flink.run.options)."""
    required = REQUIRED_GROUPS[command]
    problems: list[str] = []
    effective: PropertyGroups = {name: dict(values) for name, values in groups.items()}
    for group in sorted(KNOWN_GROUPS & groups.keys()):
        known = {key.name for key in KEYS if key.group == group}
        for name in sorted(groups[group].keys() - known):
            problems.append(f"property group '{group}' key '{name}': unknown key (known: {', '.join(sorted(known))})")
    for key in KEYS:
        if key.group not in required and key.group not in groups:
            continue
        values = effective.setdefault(key.group, {})
        if key.name not in values:
            if key.default is None:
                problems.append(f"property group '{key.group}' key '{key.name}': missing ({key.doc})")
                continue
            values[key.name] = key.default
        problem = key.check(values[key.name])
        if problem:
            problems.append(f"property group '{key.group}' key '{key.name}': {problem}, got '{values[key.name]}'")
    problems += replay.key_problems(groups.get(replay.GROUP, {}))
    if not problems and "source" in effective:
        problems += _derive_source_keys(effective["source"], groups.get(replay.GROUP, {}).get("start.timestamp", ""))
    if problems:
        raise ConfigError(f"{origin}: " + "; ".join(problems))
    return Config(effective, origin)


def _derive_source_keys(source: dict[str, str], replay_start: str) -> list[str]:
    """Keys computed from others so SQL templates need no logic. A replay upgrade's start (jobs/definitions/replay.py)
    is where a start without state reads from, whatever init.position says."""
    if replay_start:
        source.update({"init.position": "AT_TIMESTAMP", "init.timestamp": replay_start})
    arn = source["stream.arn"]
    source["stream.name"] = arn.split(":stream/", 1)[1]
    if arn.split(":")[3] != source["aws.region"]:
        return [f"property group 'source' key 'aws.region': '{source['aws.region']}' differs from the region in stream.arn"]
    if not source["aws.endpoint"]:
        source["aws.endpoint"] = f"https://kinesis.{source['aws.region']}.amazonaws.com"
    if source["init.position"] == "AT_TIMESTAMP" and not source["init.timestamp"]:
        return ["property group 'source' key 'init.timestamp': required when init.position is AT_TIMESTAMP"]
    # The connector takes the start time as epoch seconds (it ignores it unless AT_TIMESTAMP).
    source["init.timestamp.seconds"] = (
        f"{datetime.fromisoformat(source['init.timestamp'].replace('Z', '+00:00')).timestamp():.3f}"
        if source["init.timestamp"] else "0"
    )
    return []


def managed_flink_config() -> Path:
    """The runtime properties file of a job started without --config (Managed Flink's own)."""
    override = os.environ.get(PROPERTIES_FILE_OVERRIDE)
    return Path(override) if override else MANAGED_FLINK_CONFIG


def load(path: Path | None, command: str) -> Config:
    """Load from ``path`` or, when None, from Managed Flink's runtime properties file."""
    path = path or managed_flink_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    return validate(parse_property_groups(text, str(path)), command, str(path))
