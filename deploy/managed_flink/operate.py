"""start, stop and status of the deployed application.

start --snapshot latest (default) restores the newest snapshot, `none` starts without state,
NAME restores that snapshot; --allow-non-restored-state lets a changed operator graph start
while dropping state that no longer maps to an operator (README, "Deploy to Managed Flink").
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from deploy.managed_flink.aws import DeployError, describe_application, error_code
from deploy.managed_flink.plan import ApiCall
from deploy.managed_flink.settings import DeploySettings

log = logging.getLogger(__name__)

RESTORE_TYPES = {"latest": "RESTORE_FROM_LATEST_SNAPSHOT", "none": "SKIP_RESTORE_FROM_SNAPSHOT"}


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def start_call(settings: DeploySettings, snapshot: str, allow_non_restored_state: bool) -> ApiCall:
    restore: dict[str, Any] = {"ApplicationRestoreType": RESTORE_TYPES.get(snapshot, "RESTORE_FROM_CUSTOM_SNAPSHOT")}
    if snapshot not in RESTORE_TYPES:
        restore["SnapshotName"] = snapshot
    return ApiCall("kinesisanalyticsv2", "StartApplication", {
        "ApplicationName": settings.application_name,
        "RunConfiguration": {
            "FlinkRunConfiguration": {"AllowNonRestoredState": allow_non_restored_state},
            "ApplicationRestoreConfiguration": restore,
        },
    })


def stop_call(settings: DeploySettings, force: bool) -> ApiCall:
    return ApiCall("kinesisanalyticsv2", "StopApplication",
                   {"ApplicationName": settings.application_name, "Force": force})


def _existing(settings: DeploySettings, client: Any) -> dict[str, Any]:
    detail = describe_application(client, settings.application_name)
    if detail is None:
        raise DeployError(f"application {settings.application_name} does not exist in {settings.region}; run "
                          f"`python -m deploy.managed_flink deploy --config {settings.origin}` first")
    return detail


def snapshots(settings: DeploySettings, client: Any) -> list[dict[str, Any]]:
    """Snapshots, newest first."""
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.list_application_snapshots(ApplicationName=settings.application_name, Limit=50,
                                                 **({"NextToken": token} if token else {}))
        found += page.get("SnapshotSummaries", [])
        token = page.get("NextToken")
        if not token:
            break
    return sorted(found, key=lambda s: _epoch(s.get("SnapshotCreationTimestamp")), reverse=True)


def check_start(settings: DeploySettings, client: Any, snapshot: str) -> list[str]:
    """Read-only checks before StartApplication; returns notes for the user."""
    detail = _existing(settings, client)
    status = detail["ApplicationStatus"]
    if status != "READY":
        hint = "stop it first" if status in ("RUNNING", "AUTOSCALING") else "wait until it is READY"
        raise DeployError(f"application {settings.application_name} is {status}; {hint}")
    enabled = (detail.get("ApplicationConfigurationDescription", {})
               .get("ApplicationSnapshotConfigurationDescription", {}).get("SnapshotsEnabled", False))
    if snapshot == "none":
        return ["starting without state: sources read from source.init.position"]
    if not enabled:
        raise DeployError(f"snapshots are disabled for {settings.application_name} (deploy.snapshots.enabled); "
                          "start with --snapshot none")
    available = [s for s in snapshots(settings, client) if s.get("SnapshotStatus") == "READY"]
    if snapshot == "latest":
        if not available:
            return ["no snapshot yet: the application starts without state"]
        return [f"restoring the latest snapshot, {available[0]['SnapshotName']}"]
    if snapshot not in {s["SnapshotName"] for s in available}:
        names = ", ".join(s["SnapshotName"] for s in available[:10]) or "none"
        raise DeployError(f"no READY snapshot named {snapshot} (newest: {names})")
    return [f"restoring snapshot {snapshot}"]


def check_stop(settings: DeploySettings, client: Any) -> list[str]:
    status = _existing(settings, client)["ApplicationStatus"]
    if status in ("READY", "STOPPING", "FORCE_STOPPING"):
        raise DeployError(f"application {settings.application_name} is {status}; nothing to stop")
    return [f"stopping {settings.application_name} ({status}); a snapshot is taken first when snapshots are enabled"]


def _console_links(settings: DeploySettings) -> list[str]:
    region = settings.region
    # CloudWatch's console escapes a path twice, with '$' instead of '%' the second time.
    group = quote(quote(settings.log_group, safe=""), safe="").replace("%", "$")
    stream = quote(quote(settings.log_stream, safe=""), safe="").replace("%", "$")
    return [
        f"console  https://{region}.console.aws.amazon.com/flink/home?region={region}"
        f"#/applications/dashboard/{settings.application_name}/details",
        f"logs     https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{group}/log-events/{stream}",
    ]


def _last_error(settings: DeploySettings, client: Any) -> list[str]:
    """The newest failed operation (start, update, ...) and its error, if any."""
    try:
        operations = client.list_application_operations(ApplicationName=settings.application_name,
                                                        Limit=10)["ApplicationOperationInfoList"]
    except ClientError as error:
        return [f"operations unavailable: {error_code(error)}"]
    operations = sorted(operations, key=lambda op: _epoch(op.get("StartTime")), reverse=True)
    lines = []
    if operations:
        newest = operations[0]
        lines.append(f"last op  {newest['Operation']} {newest['OperationStatus']} (started {newest.get('StartTime')})")
    failed = next((op for op in operations if op["OperationStatus"] == "FAILED"), None)
    if failed:
        details = client.describe_application_operation(ApplicationName=settings.application_name,
                                                        OperationId=failed["OperationId"])["ApplicationOperationInfoDetails"]
        error = details.get("OperationFailureDetails", {}).get("ErrorInfo", {}).get("ErrorString", "(no message)")
        lines.append(f"error    {failed['Operation']} failed at {failed.get('EndTime')}: {error}")
    return lines


def status(settings: DeploySettings, client: Any) -> list[str]:
    """State, version, code, parallelism, snapshots, last error, links."""
    detail = describe_application(client, settings.application_name)
    if detail is None:
        return [f"application {settings.application_name}: not deployed in {settings.region}"]
    configuration = detail.get("ApplicationConfigurationDescription", {})
    location = (configuration.get("ApplicationCodeConfigurationDescription", {}).get("CodeContentDescription", {})
                .get("S3ApplicationCodeLocationDescription", {}))
    parallelism = configuration.get("FlinkApplicationConfigurationDescription", {}).get(
        "ParallelismConfigurationDescription", {})
    lines = [
        f"app      {detail['ApplicationName']}  {detail['ApplicationStatus']}  version {detail['ApplicationVersionId']}"
        f"  {detail.get('RuntimeEnvironment')}",
        f"code     s3://{location.get('BucketARN', '?').split(':::')[-1]}/{location.get('FileKey', '?')}",
        f"tasks    parallelism {parallelism.get('CurrentParallelism', '?')} "
        f"(configured {parallelism.get('Parallelism', '?')},"
        f" {parallelism.get('ParallelismPerKPU', '?')} per KPU, autoscaling {parallelism.get('AutoScalingEnabled')})",
    ]
    try:
        found = snapshots(settings, client)
        lines.append(f"snapshot {found[0]['SnapshotName']} ({found[0].get('SnapshotCreationTimestamp')}), "
                     f"{len(found)} in all" if found else "snapshot none yet")
    except ClientError as error:
        lines.append(f"snapshot unavailable: {error_code(error)}")
    lines += _last_error(settings, client)
    lines += _console_links(settings)
    if detail["ApplicationStatus"] == "RUNNING":
        try:
            url = client.create_application_presigned_url(ApplicationName=settings.application_name,
                                                          UrlType="FLINK_DASHBOARD_URL",
                                                          SessionExpirationDurationInSeconds=1800)["AuthorizedUrl"]
            lines.append(f"flink    {url}  (valid 30 min)")
        except ClientError as error:
            lines.append(f"flink    dashboard URL unavailable: {error_code(error)}")
    return lines
