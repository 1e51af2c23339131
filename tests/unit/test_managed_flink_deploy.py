"""deploy against a stubbed control plane: kinesisanalyticsv2 and IAM through botocore's Stubber
(exact requests), S3 and CloudWatch Logs through moto. Create vs update, version ids, the
property mapping, and clear errors for a missing role or bucket."""

import dataclasses
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from deploy.managed_flink import __main__ as cli
from deploy.managed_flink import aws, plan, settings, upgrade
from deploy.managed_flink.aws import DeployError
from deploy.managed_flink.package import Artifact, artifact_of
from deploy.managed_flink.plan import PlanError
from jobs.definitions import replay
from jobs.definitions.replay import Cut
from jobs.operations import upgrade as job_upgrade
from jobs.streaming import pipeline
from jobs.streaming.plan_fingerprint import Fingerprint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "aws.example.json"
ROLE = "arn:aws:iam::123456789012:role/feature-pipeline-flink"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "kinesisanalytics.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def artifact(tmp_path):
    """A small zip with the layout the run options need (the real one is tested in tests/integration)."""
    path = tmp_path / "feature-pipeline-1.0.0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("jobs/managed_flink_main.py", "lib/pyflink-dependencies.jar", "lib/python/six.py",
                     "sql/features/f.sql"):
            archive.writestr(name, name)
    return artifact_of(path)


# The plan fingerprint deploy computes (a JVM translation; tests/sql/test_plan_fingerprint.py covers it).
FINGERPRINT = Fingerprint((("a1", "Deduplicate(keep=[FirstRow], key=[txid], order=[PROCTIME])"),),
                          {"user_activity_1h": "d1", "user_activity_5m": "d5"})


@pytest.fixture(autouse=True)
def fixed_fingerprint(monkeypatch):
    monkeypatch.setattr(pipeline, "fingerprint_of", lambda config, sql_dir: FINGERPRINT)


@pytest.fixture
def conf():
    return settings.load(EXAMPLE)


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clients = aws.make_clients("us-east-1")
        with Stubber(clients.kinesisanalyticsv2) as flink, Stubber(clients.iam) as iam:
            yield clients, flink, iam
            flink.assert_no_pending_responses()
            iam.assert_no_pending_responses()


def role_exists(iam, trust=TRUST):
    iam.add_response("get_role", {"Role": {
        "Path": "/", "RoleName": "feature-pipeline-flink", "RoleId": "AROAEXAMPLEEXAMPLE1", "Arn": ROLE,
        "CreateDate": "2026-01-01T00:00:00Z", "AssumeRolePolicyDocument": trust}},
        {"RoleName": "feature-pipeline-flink"})


def no_application(flink):
    flink.add_client_error("describe_application", "ResourceNotFoundException", "not found",
                           expected_params={"ApplicationName": "feature-pipeline"})


def detail(version=7, status="RUNNING", **changes):
    """An existing application as DescribeApplication shows it, equal to the example config except ``changes``."""
    conf = settings.load(EXAMPLE)
    desired = plan.create_call(conf, Artifact(Path("old.zip"), "0" * 64, 1)).params
    configuration = desired["ApplicationConfiguration"]
    found = {
        "ApplicationARN": conf.application_arn, "ApplicationName": "feature-pipeline",
        "RuntimeEnvironment": "FLINK-1_20", "ServiceExecutionRole": ROLE, "ApplicationStatus": status,
        "ApplicationVersionId": version, "ApplicationMode": "STREAMING",
        "ApplicationConfigurationDescription": {
            "ApplicationCodeConfigurationDescription": {
                "CodeContentType": "ZIPFILE",
                "CodeContentDescription": {"S3ApplicationCodeLocationDescription": {
                    "BucketARN": "arn:aws:s3:::example-flink-artifacts", "FileKey": "feature-pipeline/old.zip"}}},
            "FlinkApplicationConfigurationDescription": {
                "CheckpointConfigurationDescription": configuration["FlinkApplicationConfiguration"]["CheckpointConfiguration"],
                "MonitoringConfigurationDescription": configuration["FlinkApplicationConfiguration"]["MonitoringConfiguration"],
                "ParallelismConfigurationDescription": {
                    **configuration["FlinkApplicationConfiguration"]["ParallelismConfiguration"], "CurrentParallelism": 2}},
            "EnvironmentPropertyDescriptions": {"PropertyGroupDescriptions": configuration["EnvironmentProperties"]["PropertyGroups"]},
            "ApplicationSnapshotConfigurationDescription": {"SnapshotsEnabled": True},
            "VpcConfigurationDescriptions": [{"VpcConfigurationId": "1.1", "VpcId": "vpc-0a1b2c3d4e5f60000",
                                              **configuration["VpcConfigurations"][0]}],
        },
        "CloudWatchLoggingOptionDescriptions": [{"CloudWatchLoggingOptionId": "1.1", "LogStreamARN": conf.log_stream_arn}],
    }
    for path, value in changes.items():
        target = found
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    return found


def make_bucket(clients):
    clients.s3.create_bucket(Bucket="example-flink-artifacts")


def make_logs(clients, conf):
    clients.logs.create_log_group(logGroupName=conf.log_group)
    clients.logs.create_log_stream(logGroupName=conf.log_group, logStreamName=conf.log_stream)


def deploy(conf, artifact, clients):
    deployment = plan.deploy_plan(conf, artifact, aws.look_up(conf, artifact, clients))
    aws.execute(conf, deployment, clients)
    return deployment


def test_create_path_sends_everything_in_one_create_application(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    role_exists(iam)
    no_application(flink)
    key = f"feature-pipeline/feature-pipeline-1.0.0-{artifact.sha256}.zip"
    expected = {
        "ApplicationName": "feature-pipeline",
        "ApplicationDescription": "Kinesis -> Flink SQL features -> PostgreSQL + S3 Parquet",
        "RuntimeEnvironment": "FLINK-1_20",
        "ServiceExecutionRole": ROLE,
        "ApplicationConfiguration": {
            "ApplicationCodeConfiguration": {
                "CodeContent": {"S3ContentLocation": {"BucketARN": "arn:aws:s3:::example-flink-artifacts",
                                                      "FileKey": key}},
                "CodeContentType": "ZIPFILE"},
            "FlinkApplicationConfiguration": {
                "CheckpointConfiguration": {"ConfigurationType": "CUSTOM", "CheckpointingEnabled": True,
                                            "CheckpointInterval": 60000, "MinPauseBetweenCheckpoints": 5000},
                "MonitoringConfiguration": {"ConfigurationType": "CUSTOM", "MetricsLevel": "APPLICATION", "LogLevel": "INFO"},
                "ParallelismConfiguration": {"ConfigurationType": "CUSTOM", "Parallelism": 2, "ParallelismPerKPU": 1,
                                             "AutoScalingEnabled": False}},
            "EnvironmentProperties": {"PropertyGroups": [
                *[{"PropertyGroupId": g["PropertyGroupId"], "PropertyMap": g["PropertyMap"]}
                  for g in json.loads(EXAMPLE.read_text()) if g["PropertyGroupId"] != "deploy"],
                {"PropertyGroupId": "kinesis.analytics.flink.run.options",
                 "PropertyMap": {"python": "jobs/managed_flink_main.py", "jarfile": "lib/pyflink-dependencies.jar",
                                 "pyFiles": "lib/python"}}]},
            "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": True},
            "VpcConfigurations": [{"SubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                                   "SecurityGroupIds": ["sg-0a1b2c3d4e5f60003"]}],
        },
        "CloudWatchLoggingOptions": [{"LogStreamARN": conf.log_stream_arn}],
        "ApplicationMode": "STREAMING",
    }
    flink.add_response("create_application", {"ApplicationDetail": detail(version=1, status="READY")}, expected)

    deployment = deploy(conf, artifact, clients)

    assert [c.operation for c in deployment.calls] == [
        "PutObject", "CreateLogGroup", "PutRetentionPolicy", "CreateLogStream", "CreateApplication"]
    head = clients.s3.head_object(Bucket="example-flink-artifacts", Key=key)
    assert head["Metadata"] == {"sha256": artifact.sha256} and head["ContentLength"] == artifact.size
    streams = clients.logs.describe_log_streams(logGroupName=conf.log_group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["kinesis-analytics-log-stream"]


def test_update_adds_logging_and_vpc_then_updates_with_each_returned_version_id(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    make_logs(clients, conf)
    role_exists(iam)
    current = detail(version=7, CloudWatchLoggingOptionDescriptions=[],
                     ApplicationConfigurationDescription__VpcConfigurationDescriptions=[])
    current["ApplicationConfigurationDescription"]["EnvironmentPropertyDescriptions"]["PropertyGroupDescriptions"][2][
        "PropertyMap"]["dedup.ttl.hours"] = "48"
    flink.add_response("describe_application", {"ApplicationDetail": current}, {"ApplicationName": "feature-pipeline"})
    flink.add_response("add_application_cloud_watch_logging_option", {"ApplicationVersionId": 8}, {
        "ApplicationName": "feature-pipeline", "CurrentApplicationVersionId": 7,
        "CloudWatchLoggingOption": {"LogStreamARN": conf.log_stream_arn}})
    # The service may move the version further than one step; the next call must use what it returned.
    flink.add_response("add_application_vpc_configuration", {"ApplicationVersionId": 10}, {
        "ApplicationName": "feature-pipeline", "CurrentApplicationVersionId": 8,
        "VpcConfiguration": {"SubnetIds": list(conf.subnet_ids), "SecurityGroupIds": list(conf.security_group_ids)}})
    key = f"feature-pipeline/feature-pipeline-1.0.0-{artifact.sha256}.zip"
    flink.add_response("update_application", {"ApplicationDetail": detail(version=11)}, {
        "ApplicationName": "feature-pipeline", "CurrentApplicationVersionId": 10,
        "ApplicationConfigurationUpdate": {
            "ApplicationCodeConfigurationUpdate": {
                "CodeContentTypeUpdate": "ZIPFILE",
                "CodeContentUpdate": {"S3ContentLocationUpdate": {
                    "BucketARNUpdate": "arn:aws:s3:::example-flink-artifacts", "FileKeyUpdate": key}}},
            # The whole list: the config file is the truth (events.dedup.ttl.hours back to 24).
            "EnvironmentPropertyUpdates": {"PropertyGroups": list(conf.runtime_properties)},
        }})

    deployment = deploy(conf, artifact, clients)

    assert [c.operation for c in deployment.calls] == [
        "PutObject", "AddApplicationCloudWatchLoggingOption", "AddApplicationVpcConfiguration", "UpdateApplication"]
    assert any("RUNNING: the update restarts it from a snapshot" in note for note in deployment.notes)


def test_planned_version_ids_chain_without_execution(conf, artifact):
    current = detail(version=3, CloudWatchLoggingOptionDescriptions=[],
                     ApplicationConfigurationDescription__VpcConfigurationDescriptions=[])
    calls = plan.update_calls(conf, artifact, current).calls
    assert [(c.operation, c.params["CurrentApplicationVersionId"]) for c in calls] == [
        ("AddApplicationCloudWatchLoggingOption", 3), ("AddApplicationVpcConfiguration", 4), ("UpdateApplication", 5)]


def test_changed_settings_update_only_what_differs(conf, artifact):
    current = detail(
        version=4, status="READY", ServiceExecutionRole="arn:aws:iam::123456789012:role/old",
        RuntimeEnvironment="FLINK-1_19",
        CloudWatchLoggingOptionDescriptions=[{"CloudWatchLoggingOptionId": "2.1", "LogStreamARN": "arn:old"}],
        ApplicationConfigurationDescription__VpcConfigurationDescriptions=[
            {"VpcConfigurationId": "2.2", "VpcId": "vpc-1", "SubnetIds": ["subnet-0a1b2c3d4e5f60009"],
             "SecurityGroupIds": ["sg-0a1b2c3d4e5f60003"]}],
    )
    current["ApplicationConfigurationDescription"]["ApplicationCodeConfigurationDescription"]["CodeContentDescription"][
        "S3ApplicationCodeLocationDescription"]["FileKey"] = plan.code_key(conf, artifact)
    current["ApplicationConfigurationDescription"]["FlinkApplicationConfigurationDescription"][
        "ParallelismConfigurationDescription"]["Parallelism"] = 1
    (call,) = plan.update_calls(conf, artifact, current).calls
    assert call.params == {
        "ApplicationName": "feature-pipeline", "CurrentApplicationVersionId": 4,
        "ApplicationConfigurationUpdate": {
            "FlinkApplicationConfigurationUpdate": {"ParallelismConfigurationUpdate": {
                "ConfigurationTypeUpdate": "CUSTOM", "ParallelismUpdate": 2, "ParallelismPerKPUUpdate": 1,
                "AutoScalingEnabledUpdate": False}},
            "VpcConfigurationUpdates": [{"VpcConfigurationId": "2.2", "SubnetIdUpdates": list(conf.subnet_ids),
                                         "SecurityGroupIdUpdates": list(conf.security_group_ids)}],
        },
        "ServiceExecutionRoleUpdate": ROLE,
        "CloudWatchLoggingOptionUpdates": [{"CloudWatchLoggingOptionId": "2.1", "LogStreamARNUpdate": conf.log_stream_arn}],
        "RuntimeEnvironmentUpdate": "FLINK-1_20",
    }


def test_rerun_on_an_up_to_date_application_changes_nothing(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    make_logs(clients, conf)
    key = plan.code_key(conf, artifact)
    clients.s3.put_object(Bucket="example-flink-artifacts", Key=key, Body=artifact.path.read_bytes(),
                          Metadata={"sha256": artifact.sha256})
    role_exists(iam)
    current = detail(version=12)
    current["ApplicationConfigurationDescription"]["ApplicationCodeConfigurationDescription"]["CodeContentDescription"][
        "S3ApplicationCodeLocationDescription"]["FileKey"] = key
    flink.add_response("describe_application", {"ApplicationDetail": current}, {"ApplicationName": "feature-pipeline"})

    deployment = deploy(conf, artifact, clients)

    assert deployment.calls == []
    assert "application feature-pipeline is up to date (version 12)" in deployment.notes


def test_missing_role_is_reported_before_anything_changes(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    iam.add_client_error("get_role", "NoSuchEntity", "The role with name feature-pipeline-flink cannot be found.",
                         expected_params={"RoleName": "feature-pipeline-flink"})
    with pytest.raises(DeployError, match=r"service role .*feature-pipeline-flink does not exist \(property group "
                                          r"'deploy' key 'service.role.arn'"):
        aws.look_up(conf, artifact, clients)
    assert clients.s3.list_objects_v2(Bucket="example-flink-artifacts").get("KeyCount") == 0


def test_role_that_managed_flink_cannot_assume_is_refused(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    role_exists(iam, trust=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    with pytest.raises(DeployError, match="does not trust kinesisanalytics.amazonaws.com.*trust-policy.json"):
        aws.look_up(conf, artifact, clients)


def test_role_rejected_by_create_application_names_the_key(conf, artifact, aws_env):
    clients, flink, iam = aws_env
    make_bucket(clients)
    role_exists(iam)
    no_application(flink)
    flink.add_client_error("create_application", "InvalidArgumentException",
                           "Kinesis Analytics service doesn't have sufficient privileges to assume the role.")
    with pytest.raises(DeployError) as raised:
        deploy(conf, artifact, clients)
    message = str(raised.value)
    assert "CreateApplication failed: InvalidArgumentException" in message
    assert "property group 'deploy' key 'service.role.arn'" in message and "application-policy.json" in message


def test_absent_bucket_is_reported_with_its_key(conf, artifact, aws_env):
    clients, _, _ = aws_env
    with pytest.raises(DeployError, match=r"code bucket 'example-flink-artifacts' does not exist \(property group "
                                          r"'deploy' key 'code.bucket'"):
        aws.look_up(conf, artifact, clients)


def test_application_in_transition_is_not_touched(conf, artifact):
    with pytest.raises(PlanError, match="is UPDATING; wait until it is READY or RUNNING or ROLLED_BACK"):
        plan.update_calls(conf, artifact, detail(status="UPDATING"))


def test_vpc_removed_from_config_is_left_in_place_with_a_note(conf, artifact):
    groups = json.loads(EXAMPLE.read_text())
    deploy_group = next(g for g in groups if g["PropertyGroupId"] == "deploy")["PropertyMap"]
    deploy_group["vpc.subnet.ids"] = deploy_group["vpc.security.group.ids"] = ""
    no_vpc = settings.from_groups({g["PropertyGroupId"]: g["PropertyMap"] for g in groups}, "cfg.json")
    result = plan.update_calls(no_vpc, artifact, detail())
    assert not any("Vpc" in json.dumps(c.params) for c in result.calls)
    assert any("has VPC configuration 1.1 but the config sets no vpc.subnet.ids" in n for n in result.notes)


def _no_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_dry_run_without_credentials_prints_the_create_path(monkeypatch, tmp_path, artifact, capsys):
    _no_credentials(monkeypatch, tmp_path)
    monkeypatch.setattr(aws, "make_clients", lambda region: pytest.fail("no client without credentials"))
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--dry-run", "--zip", str(artifact.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["looked_up"] is False
    assert [(r["service"], r["operation"]) for r in printed["requests"]] == [
        ("s3", "PutObject"), ("logs", "CreateLogGroup"), ("logs", "PutRetentionPolicy"), ("logs", "CreateLogStream"),
        ("kinesisanalyticsv2", "CreateApplication")]
    create = printed["requests"][-1]["request"]
    shipped = settings.load(EXAMPLE)
    shipped = dataclasses.replace(shipped, runtime_properties=upgrade.properties_with(shipped, FINGERPRINT.summary()))
    assert create == plan.create_call(shipped, artifact).params  # with the plan it runs recorded


def test_dry_run_with_credentials_only_looks(monkeypatch, conf, artifact, aws_env, capsys):
    clients, flink, iam = aws_env
    make_bucket(clients)
    role_exists(iam)
    flink.add_response("describe_application", {"ApplicationDetail": detail(version=5)},
                       {"ApplicationName": "feature-pipeline"})
    monkeypatch.setattr(aws, "make_clients", lambda region: clients)
    # Any mutating kinesisanalyticsv2/IAM call would find no stubbed response and fail.
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--dry-run", "--zip", str(artifact.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["looked_up"] is True
    assert [r["operation"] for r in printed["requests"]] == [
        "PutObject", "CreateLogGroup", "PutRetentionPolicy", "CreateLogStream", "UpdateApplication"]
    assert printed["requests"][-1]["request"]["CurrentApplicationVersionId"] == 5
    assert clients.s3.list_objects_v2(Bucket="example-flink-artifacts").get("KeyCount") == 0
    assert clients.logs.describe_log_groups()["logGroups"] == []


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    groups = json.loads(EXAMPLE.read_text())
    next(g for g in groups if g["PropertyGroupId"] == "rds")["PropertyMap"]["password"] = "hunter2"
    bad.write_text(json.dumps(groups))
    assert cli.main(["deploy", "--config", str(bad), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "error:" in error and "'rds' key 'password': must be empty in the cloud" in error
    assert "hunter2" not in error


def test_printed_plan_is_json_with_a_body_placeholder(conf, artifact):
    out = io.StringIO()
    aws.print_plan(plan.deploy_plan(conf, artifact, plan.Existing()), False, out)
    put = json.loads(out.getvalue())["requests"][0]["request"]
    assert put["Body"] == f"<contents of {artifact.path}>"
    assert put["ChecksumSHA256"] and put["Metadata"] == {"sha256": artifact.sha256}


# --- the plan fingerprint: snapshot path or replay upgrade ----------------------------------------

OLD_PLAN = Fingerprint((("b2", "Deduplicate(keep=[FirstRow], key=[txid], order=[PROCTIME])"),),
                       {"user_activity_1h": "d1", "user_activity_5m": "d0"})  # 5m edited since
CUT = Cut(FINGERPRINT.digest, datetime(2026, 12, 1, 9, 0),
          {"user_activity_1h": datetime(2026, 12, 1, 10, 0), "user_activity_5m": datetime(2026, 12, 1, 10, 40)})


def running_with(plan_record, status="RUNNING", version=7):
    found = detail(version=version, status=status)
    groups = found["ApplicationConfigurationDescription"]["EnvironmentPropertyDescriptions"]["PropertyGroupDescriptions"]
    groups.append({"PropertyGroupId": "replay", "PropertyMap": dict(plan_record)})
    return found


def deployed_with(plan_record, clients, flink, iam):
    """A RUNNING application that records ``plan_record``, with its code bucket and role in place."""
    make_bucket(clients)
    role_exists(iam)
    flink.add_response("describe_application", {"ApplicationDetail": running_with(plan_record)},
                       {"ApplicationName": "feature-pipeline"})


def test_unchanged_plan_updates_with_the_snapshot_restore(monkeypatch, conf, artifact, aws_env, capsys):
    clients, flink, iam = aws_env
    deployed_with(FINGERPRINT.summary(), clients, flink, iam)
    monkeypatch.setattr(aws, "make_clients", lambda region: clients)
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--dry-run", "--zip", str(artifact.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    update = printed["requests"][-1]
    assert update["operation"] == "UpdateApplication" and "RunConfigurationUpdate" not in update["request"]
    assert "EnvironmentPropertyUpdates" not in update["request"]["ApplicationConfigurationUpdate"]  # only the code
    assert "the snapshot restores" in printed["notes"][0]


def _replay_stubs(flink, version=7):
    """Stop, the wait until READY, the update without restore, the start without snapshot."""
    flink.add_response("stop_application", {}, {"ApplicationName": "feature-pipeline", "Force": False})
    ready = running_with(OLD_PLAN.summary(), status="READY", version=version + 1)
    flink.add_response("describe_application", {"ApplicationDetail": ready}, {"ApplicationName": "feature-pipeline"})
    flink.add_response("update_application", {"ApplicationDetail": {**ready, "ApplicationVersionId": version + 2}}, {
        "ApplicationName": "feature-pipeline", "CurrentApplicationVersionId": version + 1,
        "ApplicationConfigurationUpdate": ANY,
        "RunConfigurationUpdate": {"ApplicationRestoreConfiguration": {"ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}}})
    flink.add_response("start_application", {}, {
        "ApplicationName": "feature-pipeline",
        "RunConfiguration": {"FlinkRunConfiguration": {"AllowNonRestoredState": False},
                             "ApplicationRestoreConfiguration": {"ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}}})


def test_changed_plan_stops_updates_without_restore_and_starts(monkeypatch, conf, artifact, aws_env, capsys):
    clients, flink, iam = aws_env
    make_logs(clients, conf)
    deployed_with(OLD_PLAN.summary(), clients, flink, iam)
    _replay_stubs(flink)
    prepared = []
    monkeypatch.setattr(job_upgrade, "prepare", lambda config, sql_dir, groups, new, trim: prepared.append(trim) or CUT)
    monkeypatch.setattr(aws, "make_clients", lambda region: clients)
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--zip", str(artifact.path)]) == 0
    assert prepared == [False, True]  # checked before the stop; final (and Parquet trimmed) after it
    assert "replay upgrade" in capsys.readouterr().out


def test_changed_plan_update_carries_the_cut_over(conf, artifact):
    shipped = dataclasses.replace(conf, runtime_properties=upgrade.properties_with(conf, upgrade.replay_record(FINGERPRINT, CUT)))
    update = plan.deploy_plan(shipped, artifact, plan.Existing(True, True, True, running_with(OLD_PLAN.summary(), "READY")))
    groups = update.calls[-1].params["ApplicationConfigurationUpdate"]["EnvironmentPropertyUpdates"]["PropertyGroups"]
    replay_group = next(g["PropertyMap"] for g in groups if g["PropertyGroupId"] == "replay")
    assert replay_group["start.timestamp"] == "2026-12-01T09:00:00Z"
    assert replay_group["until.user_activity_5m"] == "2026-12-01T10:40:00Z"
    assert replay_group["operators"] == FINGERPRINT.operators_digest


def test_dry_run_of_a_changed_plan_shows_stop_update_start(monkeypatch, conf, artifact, aws_env, capsys):
    clients, flink, iam = aws_env
    deployed_with(OLD_PLAN.summary(), clients, flink, iam)
    monkeypatch.setattr(job_upgrade, "prepare", lambda config, sql_dir, groups, new, trim: CUT)
    monkeypatch.setattr(aws, "make_clients", lambda region: clients)
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--dry-run", "--zip", str(artifact.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    flink_ops = [r["operation"] for r in printed["requests"] if r["service"] == "kinesisanalyticsv2"]
    assert flink_ops == ["StopApplication", "UpdateApplication", "StartApplication"]
    assert printed["requests"][-2]["request"]["RunConfigurationUpdate"] == {
        "ApplicationRestoreConfiguration": {"ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}}
    assert printed["notes"][0].startswith("edited user_activity_5m; 1 stateful operator(s) get new IDs or state")
    assert not any("restarts it from a snapshot" in note for note in printed["notes"])


def test_a_replay_the_stream_cannot_serve_is_refused_before_anything_stops(monkeypatch, conf, artifact, aws_env, capsys):
    clients, flink, iam = aws_env
    deployed_with(OLD_PLAN.summary(), clients, flink, iam)

    def too_short(config, sql_dir, groups, new, trim):
        replay.check_retention(datetime(2026, 11, 30, 9, 0), 24, "user-events", now=datetime(2026, 12, 1, 10, 0))

    monkeypatch.setattr(job_upgrade, "prepare", too_short)
    monkeypatch.setattr(aws, "make_clients", lambda region: clients)
    assert cli.main(["deploy", "--config", str(EXAMPLE), "--zip", str(artifact.path)]) == 2
    assert "RetentionPeriodHours" in capsys.readouterr().err  # and no StopApplication: none was stubbed
