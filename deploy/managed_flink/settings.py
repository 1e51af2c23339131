"""Read a deploy config: the job's property groups (sent 1:1 as runtime properties) plus the
``deploy`` group (application, role, code bucket, VPC, logging, parallelism, checkpoints).

Why one file with a ``deploy`` group rather than a second file: the job and the deployment must
agree on the stream, bucket, secret and parallelism, and one file is one place to change them.
jobs/definitions/config.py ignores groups it does not know, so `jobs.feature_job validate --config` still
works on this file, and deploy never sends the ``deploy`` group to the application.

Everything is checked here, before any AWS call: the job's own rules (jobs.definitions.config), the cloud
rules (no local endpoints, no plain-text password), and Managed Flink's limits on runtime
properties (50 groups, 50 keys each, 1-2048 characters per key and value).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deploy.managed_flink import DEPLOY_GROUP, JAR_FILE, PY_FILES, PYTHON_ENTRY, RUN_OPTIONS_GROUP
from jobs.definitions import config as job_config
from jobs.definitions import replay
from jobs.definitions.config import Config, ConfigError, PropertyGroups
from jobs.postgres.credentials import secret_region

log = logging.getLogger(__name__)

# Managed Flink's limits on runtime properties (EnvironmentProperties).
MAX_GROUPS = 50
MAX_KEYS_PER_GROUP = 50
MAX_TEXT = 2048
GROUP_ID = re.compile(r"[a-zA-Z0-9_.-]{1,50}")

LOG_LEVELS = ("INFO", "WARN", "ERROR", "DEBUG")
METRICS_LEVELS = ("APPLICATION", "TASK", "OPERATOR", "PARALLELISM")
# CloudWatch Logs accepts only these retention periods.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                  2557, 2922, 3288, 3653)


def _pattern(regex: str, what: str) -> Callable[[str], str | None]:
    return lambda value: None if re.fullmatch(regex, value) else f"must be {what}"


def _integer(low: int, high: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if re.fullmatch(r"[0-9]{1,9}", value) and low <= int(value) <= high:
            return None
        return f"must be an integer from {low} to {high}"

    return check


def _choice(*choices: str) -> Callable[[str], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _ids(prefix: str) -> Callable[[str], str | None]:
    return _pattern(rf"({prefix}-[0-9a-f]{{8,17}}(,{prefix}-[0-9a-f]{{8,17}})*)?",
                    f"empty or a comma-separated list of {prefix}-... ids")


def _retention(value: str) -> str | None:
    return None if value.isdigit() and int(value) in RETENTION_DAYS else \
        f"must be one of CloudWatch's retention periods ({', '.join(map(str, RETENTION_DAYS))})"


@dataclass(frozen=True)
class DeployKey:
    name: str
    default: str | None  # None = required
    check: Callable[[str], str | None]
    doc: str


DEPLOY_KEYS: tuple[DeployKey, ...] = (
    DeployKey("application.name", None, _pattern(r"[a-zA-Z0-9_.-]{1,128}", "1-128 of a-z A-Z 0-9 _ . -"),
              "Managed Flink application name"),
    DeployKey("application.description", "Kinesis -> Flink SQL features -> PostgreSQL + S3 Parquet",
              _pattern(r"[^\n]{0,1024}", "at most 1024 characters on one line"), "application description"),
    DeployKey("service.role.arn", None,
              _pattern(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}", "an IAM role ARN"),
              "role the application runs as (deploy/iam/application-policy.json)"),
    DeployKey("code.bucket", None, _pattern(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name"),
              "bucket the application zip is uploaded to"),
    DeployKey("code.prefix", "managed-flink/", _pattern(r"([\w!.*'()/-]{0,900})", "an S3 key prefix"),
              "key prefix of the uploaded zips (content-addressed names below it)"),
    DeployKey("vpc.subnet.ids", "", _ids("subnet"), "subnets with a route to RDS (empty = no VPC)"),
    DeployKey("vpc.security.group.ids", "", _ids("sg"), "security groups allowed into RDS"),
    DeployKey("log.group", "", _pattern(r"[\w./#-]{0,512}", "a CloudWatch log group name"),
              "log group (empty = /aws/kinesis-analytics/<application.name>)"),
    DeployKey("log.stream", "kinesis-analytics-log-stream", _pattern(r"[^:*]{1,512}", "a log stream name"),
              "log stream"),
    DeployKey("log.retention.days", "30", _retention, "retention set when deploy creates the log group"),
    DeployKey("log.level", "INFO", _choice(*LOG_LEVELS), "application log level"),
    DeployKey("metrics.level", "APPLICATION", _choice(*METRICS_LEVELS), "CloudWatch metrics level"),
    DeployKey("parallelism.per.kpu", "1", _integer(1, 8), "parallel tasks per KPU"),
    DeployKey("autoscaling.enabled", "false", _choice("true", "false"),
              "let Managed Flink change the parallelism (keep false: parallelism = shard count)"),
    DeployKey("checkpoint.interval.seconds", "60", _integer(1, 86400), "checkpoint (and Parquet commit) interval"),
    DeployKey("checkpoint.min.pause.seconds", "5", _integer(0, 86400), "minimum pause between checkpoints"),
    DeployKey("snapshots.enabled", "true", _choice("true", "false"), "snapshot on stop/update, restore on start"),
    DeployKey("athena.database", "feature_store", _pattern(r"[a-z0-9_]{1,255}", "a lower-case Glue database name"),
              "Glue database of the Athena tables"),
    DeployKey("athena.dt.start", "20260101", _pattern(r"20[0-9]{2}[01][0-9][0-3][0-9]", "a date yyyyMMdd"),
              "first dt partition Athena projects"),
)


class DeployConfigError(ConfigError):
    """A deploy setting is missing or wrong; the message names the file, group and key."""


@dataclass(frozen=True)
class DeploySettings:
    """What one config file says to deploy, fully checked."""

    origin: str
    job: Config  # the job's validated config (stream, output path, secret: for iam and athena)
    runtime_properties: tuple[dict[str, Any], ...]  # EnvironmentProperties.PropertyGroups, API shape
    application_name: str
    description: str
    region: str
    partition: str
    account: str
    service_role_arn: str
    code_bucket: str
    code_prefix: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    log_group: str
    log_stream: str
    log_retention_days: int
    log_level: str
    metrics_level: str
    parallelism: int
    parallelism_per_kpu: int
    autoscaling: bool
    checkpoint_interval_ms: int
    min_pause_ms: int
    snapshots: bool
    athena_database: str
    athena_dt_start: str

    @property
    def application_arn(self) -> str:
        return f"arn:{self.partition}:kinesisanalytics:{self.region}:{self.account}:application/{self.application_name}"

    @property
    def log_group_arn(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{self.log_group}"

    @property
    def log_stream_arn(self) -> str:
        return f"{self.log_group_arn}:log-stream:{self.log_stream}"

    @property
    def code_bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.code_bucket}"

    @property
    def uses_vpc(self) -> bool:
        return bool(self.subnet_ids)


def _deploy_values(groups: PropertyGroups, origin: str) -> dict[str, str]:
    raw = groups.get(DEPLOY_GROUP)
    if raw is None:
        raise DeployConfigError(f"{origin}: no property group '{DEPLOY_GROUP}' (application name, role, code bucket; "
                                "see deploy/config/aws.example.json)")
    known = {key.name for key in DEPLOY_KEYS}
    problems = [f"property group '{DEPLOY_GROUP}' key '{name}': unknown key (known: {', '.join(sorted(known))})"
                for name in sorted(raw.keys() - known)]
    values: dict[str, str] = {}
    for key in DEPLOY_KEYS:
        value = raw.get(key.name, key.default)
        if value is None:
            problems.append(f"property group '{DEPLOY_GROUP}' key '{key.name}': missing ({key.doc})")
            continue
        problem = key.check(value)
        if problem:
            problems.append(f"property group '{DEPLOY_GROUP}' key '{key.name}': {problem}, got '{value}'")
        values[key.name] = value
    subnets, groups_ = values.get("vpc.subnet.ids", ""), values.get("vpc.security.group.ids", "")
    if bool(subnets) != bool(groups_):
        problems.append(f"property group '{DEPLOY_GROUP}': set both vpc.subnet.ids and vpc.security.group.ids, or neither")
    if problems:
        raise DeployConfigError(f"{origin}: " + "; ".join(problems))
    return values


def _is_aws_endpoint(url: str) -> bool:
    return not url or re.fullmatch(r"https://[a-z0-9.-]+\.amazonaws\.com(\.cn)?/?", url) is not None


def _cloud_problems(job: Config) -> list[str]:
    """Settings that work locally but are wrong (or unsafe) on Managed Flink."""
    problems = []
    if not _is_aws_endpoint(job.get("source", "aws.endpoint")):
        problems.append("property group 'source' key 'aws.endpoint': must be empty (the region's endpoint) in the "
                        f"cloud, got '{job.get('source', 'aws.endpoint')}'")
    if job.get("output", "s3.endpoint"):
        problems.append("property group 'output' key 's3.endpoint': must be empty in the cloud (Managed Flink's S3 "
                        "filesystem talks to AWS)")
    if not job.get("output", "path").startswith("s3://"):
        problems.append("property group 'output' key 'path': must be an s3://BUCKET/PREFIX path in the cloud")
    if job.get("rds", "password"):
        problems.append("property group 'rds' key 'password': must be empty in the cloud: runtime properties are "
                        "visible to anyone who can describe the application; use password.secret.arn")
    if not re.fullmatch(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[\w/+=.@-]+",
                        job.get("rds", "password.secret.arn")):
        problems.append("property group 'rds' key 'password.secret.arn': must be the Secrets Manager secret ARN of "
                        "the PostgreSQL password in the cloud")
    elif secret_region(job.get("rds", "password.secret.arn")) != job.get("source", "aws.region"):
        # The sinks' Secrets Manager JDBC driver asks the endpoint of the application's region.
        problems.append("property group 'rds' key 'password.secret.arn': the secret must be in the application's "
                        f"region ('source' key 'aws.region': {job.get('source', 'aws.region')})")
    return problems


def runtime_property_groups(groups: PropertyGroups, origin: str) -> tuple[dict[str, Any], ...]:
    """The job's groups as the file has them (not the defaults or derived keys jobs.definitions.config adds),
    plus the run options; empty values are left out because the API refuses them and the job
    reads a missing key as its default, which for those keys is empty."""
    defaults = {(key.group, key.name): key.default for key in job_config.KEYS}
    problems: list[str] = []
    mapped: list[dict[str, Any]] = []
    for group_id, properties in groups.items():
        if group_id == DEPLOY_GROUP:
            continue
        if group_id == RUN_OPTIONS_GROUP:
            problems.append(f"property group '{group_id}': set by deploy from the package layout; remove it")
            continue
        if group_id == replay.GROUP:
            problems.append(f"property group '{group_id}': set by deploy (the plan it runs, an upgrade's cut-over); "
                            "remove it")
            continue
        if group_id not in job_config.KNOWN_GROUPS:
            log.warning("%s: property group '%s' is not read by the job; it is sent anyway", origin, group_id)
        kept = {}
        for key, value in properties.items():
            if value == "":
                if defaults.get((group_id, key), "") != "":
                    problems.append(f"property group '{group_id}' key '{key}': empty, but the job's default is "
                                    f"'{defaults[(group_id, key)]}'; remove the key or give a value")
                continue
            kept[key] = value
        mapped.append({"PropertyGroupId": group_id, "PropertyMap": kept})
    mapped.append({"PropertyGroupId": RUN_OPTIONS_GROUP,
                   "PropertyMap": {"python": PYTHON_ENTRY, "jarfile": JAR_FILE, "pyFiles": PY_FILES}})
    problems += property_limit_problems(mapped)
    if problems:
        raise DeployConfigError(f"{origin}: " + "; ".join(problems))
    return tuple(mapped)


def property_limit_problems(groups: list[dict[str, Any]]) -> list[str]:
    """Managed Flink's limits on runtime properties, checked before any call."""
    problems = []
    if len(groups) > MAX_GROUPS:
        problems.append(f"{len(groups)} property groups, Managed Flink allows at most {MAX_GROUPS}")
    for group in groups:
        group_id, properties = group["PropertyGroupId"], group["PropertyMap"]
        if not GROUP_ID.fullmatch(group_id):
            problems.append(f"property group '{group_id}': the id must be 1-50 of a-z A-Z 0-9 _ . -")
        if len(properties) > MAX_KEYS_PER_GROUP:
            problems.append(f"property group '{group_id}': {len(properties)} keys, at most {MAX_KEYS_PER_GROUP} allowed")
        for key, value in properties.items():
            if not 1 <= len(key) <= MAX_TEXT:
                problems.append(f"property group '{group_id}' key '{key[:60]}': keys must be 1-{MAX_TEXT} characters")
            if not 1 <= len(value) <= MAX_TEXT:
                problems.append(f"property group '{group_id}' key '{key[:60]}': values must be 1-{MAX_TEXT} "
                                f"characters, got {len(value)}")
    return problems


def from_groups(groups: PropertyGroups, origin: str) -> DeploySettings:
    job = job_config.validate(groups, "run", origin)
    values = _deploy_values(groups, origin)
    problems = _cloud_problems(job)
    if problems:
        raise DeployConfigError(f"{origin}: " + "; ".join(problems))
    if job.groups["job"].get("checkpoint.dir"):
        log.warning("%s: job.checkpoint.dir is for local runs; Managed Flink keeps its own checkpoints", origin)
    role = values["service.role.arn"]
    partition, account = role.split(":")[1], role.split(":")[4]
    region = job.get("source", "aws.region")
    name = values["application.name"]
    prefix = values["code.prefix"].strip("/")
    return DeploySettings(
        origin=origin,
        job=job,
        runtime_properties=runtime_property_groups(groups, origin),
        application_name=name,
        description=values["application.description"],
        region=region,
        partition=partition,
        account=account,
        service_role_arn=role,
        code_bucket=values["code.bucket"],
        code_prefix=f"{prefix}/" if prefix else "",
        subnet_ids=tuple(filter(None, values["vpc.subnet.ids"].split(","))),
        security_group_ids=tuple(filter(None, values["vpc.security.group.ids"].split(","))),
        log_group=values["log.group"] or f"/aws/kinesis-analytics/{name}",
        log_stream=values["log.stream"],
        log_retention_days=int(values["log.retention.days"]),
        log_level=values["log.level"],
        metrics_level=values["metrics.level"],
        # One number for local and cloud: job.parallelism is the shard count (README), so the
        # deploy group does not repeat it.
        parallelism=job.get_int("job", "parallelism"),
        parallelism_per_kpu=int(values["parallelism.per.kpu"]),
        autoscaling=values["autoscaling.enabled"] == "true",
        checkpoint_interval_ms=int(values["checkpoint.interval.seconds"]) * 1000,
        min_pause_ms=int(values["checkpoint.min.pause.seconds"]) * 1000,
        snapshots=values["snapshots.enabled"] == "true",
        athena_database=values["athena.database"],
        athena_dt_start=values["athena.dt.start"],
    )


def load(path: Path) -> DeploySettings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DeployConfigError(f"{path}: cannot read config: {error.strerror}") from None
    return from_groups(job_config.parse_property_groups(text, str(path)), str(path))


def property_groups_json(settings: DeploySettings) -> str:
    """The runtime properties as Managed Flink writes them to /etc/flink/application_properties.json."""
    return json.dumps(list(settings.runtime_properties), indent=2)
