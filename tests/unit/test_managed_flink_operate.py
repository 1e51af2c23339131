"""start / stop / status against a stubbed kinesisanalyticsv2 (botocore Stubber)."""

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from deploy.managed_flink import __main__ as cli
from deploy.managed_flink import aws, operate
from deploy.managed_flink.aws import DeployError
from deploy.managed_flink.plan import Plan
from tests.unit.test_managed_flink_deploy import EXAMPLE, detail

NAME = {"ApplicationName": "feature-pipeline"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def flink(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("kinesisanalyticsv2", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def conf():
    from deploy.managed_flink import settings

    return settings.load(EXAMPLE)


def described(stub, **kwargs):
    stub.add_response("describe_application", {"ApplicationDetail": detail(**kwargs)}, NAME)


def snapshots(stub, *names):
    stub.add_response("list_application_snapshots", {"SnapshotSummaries": [
        {"SnapshotName": name, "SnapshotStatus": "READY", "ApplicationVersionId": 3,
         "SnapshotCreationTimestamp": T0.replace(minute=index)} for index, name in enumerate(names)]},
        {**NAME, "Limit": 50})


def test_start_restores_the_latest_snapshot_by_default(conf, flink):
    client, stub = flink
    described(stub, status="READY")
    snapshots(stub, "older", "newest")
    assert operate.check_start(conf, client, "latest") == ["restoring the latest snapshot, newest"]
    assert operate.start_call(conf, "latest", False).params == {**NAME, "RunConfiguration": {
        "FlinkRunConfiguration": {"AllowNonRestoredState": False},
        "ApplicationRestoreConfiguration": {"ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}}}


def test_start_from_a_named_snapshot_with_non_restored_state(conf, flink):
    client, stub = flink
    described(stub, status="READY")
    snapshots(stub, "before-new-feature")
    assert operate.check_start(conf, client, "before-new-feature") == ["restoring snapshot before-new-feature"]
    call = operate.start_call(conf, "before-new-feature", True)
    stub.add_response("start_application", {}, call.params)
    aws.execute(conf, Plan([call]), aws.Clients(client, None, None, None))
    assert call.params["RunConfiguration"] == {
        "FlinkRunConfiguration": {"AllowNonRestoredState": True},
        "ApplicationRestoreConfiguration": {"ApplicationRestoreType": "RESTORE_FROM_CUSTOM_SNAPSHOT",
                                            "SnapshotName": "before-new-feature"}}


def test_start_fresh_skips_restore(conf, flink):
    client, stub = flink
    described(stub, status="READY")
    assert operate.check_start(conf, client, "none") == ["starting without state: sources read from source.init.position"]
    assert operate.start_call(conf, "none", False).params["RunConfiguration"]["ApplicationRestoreConfiguration"] == {
        "ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}


def test_unknown_snapshot_lists_the_newest(conf, flink):
    client, stub = flink
    described(stub, status="READY")
    snapshots(stub, "a", "b")
    with pytest.raises(DeployError, match="no READY snapshot named c \\(newest: b, a\\)"):
        operate.check_start(conf, client, "c")


def test_start_of_a_running_application_says_stop_first(conf, flink):
    client, stub = flink
    described(stub, status="RUNNING")
    with pytest.raises(DeployError, match="is RUNNING; stop it first"):
        operate.check_start(conf, client, "latest")


def test_start_of_an_absent_application_says_deploy_first(conf, flink):
    client, stub = flink
    stub.add_client_error("describe_application", "ResourceNotFoundException", "no", expected_params=NAME)
    with pytest.raises(DeployError, match="does not exist in us-east-1; run .*deploy --config"):
        operate.check_start(conf, client, "latest")


def test_stop(conf, flink):
    client, stub = flink
    described(stub, status="RUNNING")
    assert operate.check_stop(conf, client)[0].startswith("stopping feature-pipeline (RUNNING)")
    assert operate.stop_call(conf, force=False).params == {**NAME, "Force": False}
    described(stub, status="READY")
    with pytest.raises(DeployError, match="is READY; nothing to stop"):
        operate.check_stop(conf, client)


def test_status_shows_state_version_last_error_and_links(conf, flink):
    client, stub = flink
    described(stub, version=9, status="READY")
    snapshots(stub, "s1")
    stub.add_response("list_application_operations", {"ApplicationOperationInfoList": [
        {"Operation": "UpdateApplication", "OperationId": "op-1", "StartTime": T0, "EndTime": T0,
         "OperationStatus": "SUCCESSFUL"},
        {"Operation": "StartApplication", "OperationId": "op-2", "StartTime": T0.replace(hour=13), "EndTime": T0,
         "OperationStatus": "FAILED"}]}, {**NAME, "Limit": 10})
    stub.add_response("describe_application_operation", {"ApplicationOperationInfoDetails": {
        "Operation": "StartApplication", "StartTime": T0, "EndTime": T0, "OperationStatus": "FAILED",
        "OperationFailureDetails": {"ErrorInfo": {"ErrorString": "Cannot map checkpoint state for operator x"}}}},
        {**NAME, "OperationId": "op-2"})
    lines = "\n".join(operate.status(conf, client))
    assert "feature-pipeline  READY  version 9  FLINK-1_20" in lines
    assert "snapshot s1" in lines
    assert "last op  StartApplication FAILED" in lines
    assert "error    StartApplication failed at" in lines and "Cannot map checkpoint state" in lines
    assert "#logsV2:log-groups/log-group/$252Faws$252Fkinesis-analytics$252Ffeature-pipeline/log-events/" in lines


def test_start_dry_run_without_credentials_prints_the_request(monkeypatch, tmp_path, capsys):
    from tests.unit.test_managed_flink_deploy import _no_credentials

    _no_credentials(monkeypatch, tmp_path)
    assert cli.main(["start", "--config", str(EXAMPLE), "--snapshot", "none", "--dry-run"]) == 0
    (request,) = json.loads(capsys.readouterr().out)["requests"]
    assert request["operation"] == "StartApplication"
    assert request["request"]["RunConfiguration"]["ApplicationRestoreConfiguration"] == {
        "ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}
