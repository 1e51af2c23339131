"""The mutating API requests a deploy makes, computed from the settings and what AWS has now.

Pure functions: nothing here talks to AWS, so the requests are what --dry-run prints and what
the tests compare with botocore's Stubber, byte for byte.

  absent application   CreateApplication with everything (code, runtime properties, checkpoints,
                       parallelism, monitoring, snapshots, VPC, CloudWatch logging)
  existing application AddApplicationCloudWatchLoggingOption / AddApplicationVpcConfiguration
                       when it has none (UpdateApplication cannot add them), then ONE
                       UpdateApplication with only what differs, each call carrying the version
                       id the previous one produced; nothing at all when it is up to date
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from deploy.managed_flink import RUNTIME_ENVIRONMENT
from deploy.managed_flink.package import Artifact
from deploy.managed_flink.settings import DeploySettings

log = logging.getLogger(__name__)

# States in which Managed Flink accepts configuration changes; others are transitions to wait out.
UPDATABLE_STATES = ("READY", "RUNNING", "ROLLED_BACK")


class PlanError(RuntimeError):
    """The application cannot be deployed as it is now; the message says why and what to do."""


@dataclass
class ApiCall:
    """One request: ``service`` and ``operation`` as the AWS API names them, ``params`` as boto3 takes them."""

    service: str
    operation: str
    params: dict[str, Any]
    body_path: str | None = None  # S3 PutObject: the file sent as Body
    # Calls after an Add* call must carry the version id it returned (predicted here as +1).
    takes_version: bool = False

    def as_json(self) -> dict[str, Any]:
        params = dict(self.params)
        if self.body_path is not None:
            params["Body"] = f"<contents of {self.body_path}>"
        return {"service": self.service, "operation": self.operation, "request": params}


@dataclass
class Plan:
    calls: list[ApiCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was found and left alone


@dataclass(frozen=True)
class Existing:
    """What the read-only look-ups found (None everywhere: nothing known, as without credentials)."""

    code_uploaded: bool = False
    log_group: bool = False
    log_stream: bool = False
    application: dict[str, Any] | None = None  # DescribeApplication's ApplicationDetail


def code_key(settings: DeploySettings, artifact: Artifact) -> str:
    """Content-addressed: a new build gets a new key, so Managed Flink sees the change and an
    unchanged build maps to the object already there."""
    return f"{settings.code_prefix}{artifact.path.stem}-{artifact.sha256}.zip"


def upload_call(settings: DeploySettings, artifact: Artifact) -> ApiCall:
    return ApiCall("s3", "PutObject", {
        "Bucket": settings.code_bucket,
        "Key": code_key(settings, artifact),
        "ContentType": "application/zip",
        "ContentLength": artifact.size,
        # S3 rejects the upload if the bytes it received have another digest.
        "ChecksumSHA256": base64.b64encode(bytes.fromhex(artifact.sha256)).decode(),
        "Metadata": {"sha256": artifact.sha256},
    }, body_path=str(artifact.path))


def log_calls(settings: DeploySettings, existing: Existing) -> list[ApiCall]:
    calls = []
    if not existing.log_group:
        calls.append(ApiCall("logs", "CreateLogGroup", {"logGroupName": settings.log_group}))
        calls.append(ApiCall("logs", "PutRetentionPolicy", {"logGroupName": settings.log_group,
                                                            "retentionInDays": settings.log_retention_days}))
    if not existing.log_stream:
        calls.append(ApiCall("logs", "CreateLogStream", {"logGroupName": settings.log_group,
                                                         "logStreamName": settings.log_stream}))
    return calls


def _checkpoints(settings: DeploySettings) -> dict[str, Any]:
    return {"ConfigurationType": "CUSTOM", "CheckpointingEnabled": True,
            "CheckpointInterval": settings.checkpoint_interval_ms,
            "MinPauseBetweenCheckpoints": settings.min_pause_ms}


def _monitoring(settings: DeploySettings) -> dict[str, Any]:
    return {"ConfigurationType": "CUSTOM", "MetricsLevel": settings.metrics_level, "LogLevel": settings.log_level}


def _parallelism(settings: DeploySettings) -> dict[str, Any]:
    return {"ConfigurationType": "CUSTOM", "Parallelism": settings.parallelism,
            "ParallelismPerKPU": settings.parallelism_per_kpu, "AutoScalingEnabled": settings.autoscaling}


def _vpc(settings: DeploySettings) -> dict[str, Any]:
    return {"SubnetIds": list(settings.subnet_ids), "SecurityGroupIds": list(settings.security_group_ids)}


def create_call(settings: DeploySettings, artifact: Artifact) -> ApiCall:
    configuration: dict[str, Any] = {
        "ApplicationCodeConfiguration": {
            "CodeContent": {"S3ContentLocation": {"BucketARN": settings.code_bucket_arn,
                                                  "FileKey": code_key(settings, artifact)}},
            "CodeContentType": "ZIPFILE",
        },
        "FlinkApplicationConfiguration": {
            "CheckpointConfiguration": _checkpoints(settings),
            "MonitoringConfiguration": _monitoring(settings),
            "ParallelismConfiguration": _parallelism(settings),
        },
        "EnvironmentProperties": {"PropertyGroups": [dict(group) for group in settings.runtime_properties]},
        "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": settings.snapshots},
    }
    if settings.uses_vpc:
        configuration["VpcConfigurations"] = [_vpc(settings)]
    return ApiCall("kinesisanalyticsv2", "CreateApplication", {
        "ApplicationName": settings.application_name,
        "ApplicationDescription": settings.description,
        "RuntimeEnvironment": RUNTIME_ENVIRONMENT,
        "ServiceExecutionRole": settings.service_role_arn,
        "ApplicationConfiguration": configuration,
        "CloudWatchLoggingOptions": [{"LogStreamARN": settings.log_stream_arn}],
        "ApplicationMode": "STREAMING",
    })


def _differs(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    current = current or {}
    return any(current.get(key) != value for key, value in wanted.items())


def _property_groups(groups: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {group["PropertyGroupId"]: dict(group["PropertyMap"]) for group in groups}


def _flink_updates(settings: DeploySettings, flink: dict[str, Any]) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    for name, wanted in (("Checkpoint", _checkpoints(settings)), ("Monitoring", _monitoring(settings)),
                         ("Parallelism", _parallelism(settings))):
        if _differs(flink.get(f"{name}ConfigurationDescription"), wanted):
            # The Update shapes name every field like the Create ones, with "Update" appended.
            updates[f"{name}ConfigurationUpdate"] = {f"{key}Update": value for key, value in wanted.items()}
    return updates


def update_calls(settings: DeploySettings, artifact: Artifact, detail: dict[str, Any]) -> Plan:
    """The calls that bring an existing application in line with the settings."""
    name = settings.application_name
    status = detail.get("ApplicationStatus")
    if detail.get("ApplicationMode", "STREAMING") != "STREAMING":
        raise PlanError(f"application {name} exists but is a Studio notebook ({detail.get('ApplicationMode')}); "
                        "choose another deploy.application.name")
    if status not in UPDATABLE_STATES:
        raise PlanError(f"application {name} is {status}; wait until it is {' or '.join(UPDATABLE_STATES)} and re-run "
                        "(`python -m deploy.managed_flink status` shows it)")
    plan = Plan()
    version = int(detail["ApplicationVersionId"])
    configuration = detail.get("ApplicationConfigurationDescription", {})

    logging_options = detail.get("CloudWatchLoggingOptionDescriptions", [])
    logging_update = None
    if not logging_options:
        plan.calls.append(ApiCall("kinesisanalyticsv2", "AddApplicationCloudWatchLoggingOption", {
            "ApplicationName": name, "CurrentApplicationVersionId": version,
            "CloudWatchLoggingOption": {"LogStreamARN": settings.log_stream_arn}}, takes_version=True))
        version += 1
    elif logging_options[0]["LogStreamARN"] != settings.log_stream_arn:
        logging_update = [{"CloudWatchLoggingOptionId": logging_options[0]["CloudWatchLoggingOptionId"],
                           "LogStreamARNUpdate": settings.log_stream_arn}]

    vpcs = configuration.get("VpcConfigurationDescriptions", [])
    vpc_update = None
    if settings.uses_vpc and not vpcs:
        plan.calls.append(ApiCall("kinesisanalyticsv2", "AddApplicationVpcConfiguration", {
            "ApplicationName": name, "CurrentApplicationVersionId": version,
            "VpcConfiguration": _vpc(settings)}, takes_version=True))
        version += 1
    elif settings.uses_vpc and (sorted(vpcs[0]["SubnetIds"]) != sorted(settings.subnet_ids)
                                or sorted(vpcs[0]["SecurityGroupIds"]) != sorted(settings.security_group_ids)):
        vpc_update = [{"VpcConfigurationId": vpcs[0]["VpcConfigurationId"],
                       "SubnetIdUpdates": list(settings.subnet_ids),
                       "SecurityGroupIdUpdates": list(settings.security_group_ids)}]
    elif not settings.uses_vpc and vpcs:
        plan.notes.append(f"application {name} has VPC configuration {vpcs[0]['VpcConfigurationId']} but the config "
                          "sets no vpc.subnet.ids; left in place (DeleteApplicationVpcConfiguration removes it)")

    update: dict[str, Any] = {}
    location = (configuration.get("ApplicationCodeConfigurationDescription", {})
                .get("CodeContentDescription", {}).get("S3ApplicationCodeLocationDescription", {}))
    if location.get("BucketARN") != settings.code_bucket_arn or location.get("FileKey") != code_key(settings, artifact):
        update["ApplicationCodeConfigurationUpdate"] = {
            "CodeContentTypeUpdate": "ZIPFILE",
            "CodeContentUpdate": {"S3ContentLocationUpdate": {"BucketARNUpdate": settings.code_bucket_arn,
                                                              "FileKeyUpdate": code_key(settings, artifact)}},
        }
    flink = _flink_updates(settings, configuration.get("FlinkApplicationConfigurationDescription", {}))
    if flink:
        update["FlinkApplicationConfigurationUpdate"] = flink
    current_groups = configuration.get("EnvironmentPropertyDescriptions", {}).get("PropertyGroupDescriptions", [])
    if _property_groups(current_groups) != _property_groups(list(settings.runtime_properties)):
        # The list replaces all groups: a key dropped from the config disappears in the cloud too.
        update["EnvironmentPropertyUpdates"] = {"PropertyGroups": [dict(g) for g in settings.runtime_properties]}
    snapshots = configuration.get("ApplicationSnapshotConfigurationDescription", {}).get("SnapshotsEnabled")
    if snapshots != settings.snapshots:
        update["ApplicationSnapshotConfigurationUpdate"] = {"SnapshotsEnabledUpdate": settings.snapshots}
    if vpc_update:
        update["VpcConfigurationUpdates"] = vpc_update

    params: dict[str, Any] = {}
    if update:
        params["ApplicationConfigurationUpdate"] = update
    if detail.get("ServiceExecutionRole") != settings.service_role_arn:
        params["ServiceExecutionRoleUpdate"] = settings.service_role_arn
    if logging_update:
        params["CloudWatchLoggingOptionUpdates"] = logging_update
    if detail.get("RuntimeEnvironment") != RUNTIME_ENVIRONMENT:
        # The zip's jar is built for this runtime; an older app is upgraded in place.
        plan.notes.append(f"application {name} runs {detail.get('RuntimeEnvironment')}; upgrading in place to "
                          f"{RUNTIME_ENVIRONMENT}")
        params["RuntimeEnvironmentUpdate"] = RUNTIME_ENVIRONMENT
    if params:
        if status == "RUNNING":
            plan.notes.append(f"application {name} is RUNNING: the update restarts it from a snapshot (see README, "
                              "'Deploy to Managed Flink', before changing feature SQL)")
        plan.calls.append(ApiCall("kinesisanalyticsv2", "UpdateApplication", {
            "ApplicationName": name, "CurrentApplicationVersionId": version, **params}, takes_version=True))
    elif not plan.calls:
        plan.notes.append(f"application {name} is up to date (version {version})")
    return plan


def deploy_plan(settings: DeploySettings, artifact: Artifact, existing: Existing) -> Plan:
    """Everything deploy changes, in order: code upload, log group/stream, the application."""
    plan = Plan()
    if existing.code_uploaded:
        plan.notes.append(f"s3://{settings.code_bucket}/{code_key(settings, artifact)} already uploaded")
    else:
        plan.calls.append(upload_call(settings, artifact))
    plan.calls += log_calls(settings, existing)
    if existing.application is None:
        plan.calls.append(create_call(settings, artifact))
    else:
        application = update_calls(settings, artifact, existing.application)
        plan.calls += application.calls
        plan.notes += application.notes
    return plan
