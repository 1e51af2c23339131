"""Which way a deploy ships the job: restore the snapshot (the operator graph is unchanged) or a
replay upgrade (jobs/definitions/replay.py) when the feature SQL gives new stateful operators.

The application records the plan it runs in its runtime properties (property group ``replay``:
the fingerprint summary and, after an upgrade, the cut-over), so the next deploy compares against
what is deployed, not against a local file.

  unchanged  UpdateApplication as before (RUNNING: snapshot, update, restore), the replay group kept
  changed    checks first (markers in PostgreSQL and S3, the stream's retention), nothing stopped if
             they fail; then StopApplication (snapshot) and wait until READY; read what each sink
             holds, remove Parquet rows committed past their marker; UpdateApplication with the new
             code and properties (the cut-over) and SKIP_RESTORE_FROM_SNAPSHOT; StartApplication
             without a snapshot
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from deploy.managed_flink.operate import RESTORE_TYPES
from deploy.managed_flink.plan import ApiCall, PlanError
from deploy.managed_flink.settings import DeploySettings
from jobs.definitions import replay
from jobs.streaming.plan_fingerprint import Change, Fingerprint, compare_summary

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 900


@dataclass(frozen=True)
class Decision:
    replay: bool
    reason: str
    change: Change | None


def recorded(detail: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The replay group the application runs with (None: not deployed, or by a version that kept none)."""
    if detail is None:
        return None
    groups = (detail.get("ApplicationConfigurationDescription", {}).get("EnvironmentPropertyDescriptions", {})
              .get("PropertyGroupDescriptions", []))
    found = next((g["PropertyMap"] for g in groups if g["PropertyGroupId"] == replay.GROUP), None)
    return dict(found) if found else None


def decide(detail: Mapping[str, Any] | None, new: Fingerprint) -> Decision:
    record = recorded(detail)
    if detail is None:
        return Decision(False, "the application does not exist yet: create it", None)
    if record is None or "operators" not in record:
        return Decision(False, "the application records no plan fingerprint (deployed by an older version): "
                               "updating with a snapshot restore as before", None)
    change = compare_summary(record, new)
    if change.restorable:
        return Decision(False, f"{change.describe()}: the snapshot restores", change)
    return Decision(True, f"{change.describe()}: a snapshot cannot be restored, so the new version replays the "
                          "stream with fresh state (README, Upgrades)", change)


def properties_with(settings: DeploySettings, record: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """The runtime property groups to deploy, with the replay group set to ``record``."""
    groups = [group for group in settings.runtime_properties if group["PropertyGroupId"] != replay.GROUP]
    return tuple(groups) + ({"PropertyGroupId": replay.GROUP, "PropertyMap": dict(record)},)


def kept_record(detail: Mapping[str, Any] | None, new: Fingerprint) -> dict[str, str]:
    """Unchanged path: keep the deployed cut-over (a no-op by now), refresh the summary."""
    kept = {key: value for key, value in (recorded(detail) or {}).items() if key not in replay.RECORD_KEYS}
    return {**new.summary(), **kept}


def replay_record(new: Fingerprint, cut: replay.Cut) -> dict[str, str]:
    return {**new.summary(), **cut.to_properties()}


def without_restore(update: ApiCall) -> ApiCall:
    """The UpdateApplication of a replay: the application starts without its snapshot."""
    params = dict(update.params)
    params["RunConfigurationUpdate"] = {"ApplicationRestoreConfiguration": {
        "ApplicationRestoreType": RESTORE_TYPES["none"]}}
    return ApiCall(update.service, update.operation, params, update.body_path, update.takes_version)


def wait_until_ready(client: Any, name: str, sleep: Callable[[float], None] = time.sleep,
                     timeout: float = STOP_WAIT_SECONDS) -> dict[str, Any]:
    """Poll DescribeApplication until the stop has finished (READY); the snapshot is taken by then."""
    waited = 0.0
    while True:
        detail = client.describe_application(ApplicationName=name)["ApplicationDetail"]
        status = detail["ApplicationStatus"]
        if status == "READY":
            return detail
        if status not in ("STOPPING", "RUNNING", "UPDATING", "AUTOSCALING"):
            raise PlanError(f"application {name} is {status} while stopping for the upgrade; see `status`")
        if waited >= timeout:
            raise PlanError(f"application {name} still {status} after {timeout:.0f} s; re-run deploy when it is READY")
        sleep(10.0)
        waited += 10.0


def check_retention(settings: DeploySettings, kinesis: Any, cut: replay.Cut) -> None:
    stream = settings.job.get("source", "stream.name")
    hours = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["RetentionPeriodHours"]
    replay.check_retention(cut.start, int(hours), stream)
