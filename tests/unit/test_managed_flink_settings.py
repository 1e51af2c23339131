"""The deploy config: job groups mapped 1:1 to runtime properties, the deploy group, cloud rules and
Managed Flink's limits, all checked before any AWS call."""

import json
from pathlib import Path

import pytest

from deploy.managed_flink import DEPLOY_GROUP, RUN_OPTIONS_GROUP, settings
from deploy.managed_flink.settings import DeployConfigError
from jobs.definitions import config as job_config
from jobs.definitions.config import parse_property_groups

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "aws.example.json"
LOCAL = ROOT / "deploy" / "config" / "local.json"


def example_groups():
    return parse_property_groups(EXAMPLE.read_text(), "aws.example.json")


def load(groups):
    return settings.from_groups(groups, "cfg.json")


def test_example_groups_match_local_plus_deploy():
    local = parse_property_groups(LOCAL.read_text(), "local.json")
    assert set(example_groups()) == set(local) | {DEPLOY_GROUP}


def test_runtime_properties_are_the_file_groups_one_to_one_plus_run_options():
    groups = example_groups()
    loaded = load(groups)
    sent = {g["PropertyGroupId"]: g["PropertyMap"] for g in loaded.runtime_properties}
    assert DEPLOY_GROUP not in sent
    for group_id, properties in groups.items():
        if group_id != DEPLOY_GROUP:
            assert sent[group_id] == properties  # no defaults or derived keys added
    assert sent[RUN_OPTIONS_GROUP] == {"python": "jobs/managed_flink_main.py",
                                       "jarfile": "lib/pyflink-dependencies.jar", "pyFiles": "lib/python"}


def test_what_the_job_reads_in_the_cloud_is_valid_for_it(tmp_path):
    """Managed Flink writes the runtime properties to /etc/flink/application_properties.json."""
    written = tmp_path / "application_properties.json"
    written.write_text(settings.property_groups_json(load(example_groups())))
    config = job_config.load(written, "run")
    assert config.get("source", "stream.name") == "user-events"


def test_derived_settings():
    loaded = load(example_groups())
    assert loaded.account == "123456789012" and loaded.region == "us-east-1"
    assert loaded.parallelism == 2  # job.parallelism: one number for local and cloud
    assert loaded.application_arn == "arn:aws:kinesisanalytics:us-east-1:123456789012:application/feature-pipeline"
    assert loaded.log_stream_arn == ("arn:aws:logs:us-east-1:123456789012:log-group:/aws/kinesis-analytics/"
                                     "feature-pipeline:log-stream:kinesis-analytics-log-stream")
    assert loaded.subnet_ids == ("subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002")
    assert loaded.checkpoint_interval_ms == 60000 and loaded.code_prefix == "feature-pipeline/"


def test_empty_values_are_left_out_when_the_job_default_is_empty():
    groups = example_groups()
    groups["source"]["aws.endpoint"] = ""
    groups["source"]["init.timestamp"] = ""
    sent = {g["PropertyGroupId"]: g["PropertyMap"] for g in load(groups).runtime_properties}
    assert "aws.endpoint" not in sent["source"] and "init.timestamp" not in sent["source"]


def test_empty_value_with_a_non_empty_default_is_refused():
    groups = example_groups()
    groups["events"]["dedup.ttl.hours"] = ""
    with pytest.raises(job_config.ConfigError, match=r"'events' key 'dedup.ttl.hours'"):
        load(groups)


@pytest.mark.parametrize("group,key,value,message", [
    ("rds", "password", "secret", r"'rds' key 'password': must be empty in the cloud"),
    ("rds", "password.secret.arn", "", r"'rds' key 'password.secret.arn': must be the Secrets Manager secret ARN"),
    ("rds", "password.secret.arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf",
     r"'rds' key 'password.secret.arn': the secret must be in the application's region \('source' key 'aws.region': us-east-1\)"),
    ("source", "aws.endpoint", "http://127.0.0.1:4566", r"'source' key 'aws.endpoint': must be empty"),
    ("output", "s3.endpoint", "http://127.0.0.1:4566", r"'output' key 's3.endpoint': must be empty"),
])
def test_local_settings_are_refused_for_the_cloud(group, key, value, message):
    groups = example_groups()
    groups[group][key] = value
    with pytest.raises(DeployConfigError, match=message):
        load(groups)


def test_job_rules_apply_with_group_and_key():
    groups = example_groups()
    groups["events"]["watermark.delay.seconds"] = "-1"
    with pytest.raises(job_config.ConfigError, match=r"'events' key 'watermark.delay.seconds'"):
        load(groups)


@pytest.mark.parametrize("key,value,message", [
    ("application.name", "bad name", r"'deploy' key 'application.name'"),
    ("service.role.arn", "role", r"'deploy' key 'service.role.arn': must be an IAM role ARN"),
    ("vpc.subnet.ids", "subnet-zz", r"'deploy' key 'vpc.subnet.ids'"),
    ("log.retention.days", "31", r"'deploy' key 'log.retention.days'"),
    ("tpyo", "x", r"'deploy' key 'tpyo': unknown key"),
])
def test_deploy_group_errors_name_the_key(key, value, message):
    groups = example_groups()
    groups[DEPLOY_GROUP][key] = value
    with pytest.raises(DeployConfigError, match=message):
        load(groups)


def test_missing_deploy_group_or_required_key():
    groups = example_groups()
    del groups[DEPLOY_GROUP]["code.bucket"]
    with pytest.raises(DeployConfigError, match=r"'deploy' key 'code.bucket': missing"):
        load(groups)
    del groups[DEPLOY_GROUP]
    with pytest.raises(DeployConfigError, match=r"no property group 'deploy'"):
        load(groups)


def test_vpc_needs_subnets_and_security_groups_together():
    groups = example_groups()
    groups[DEPLOY_GROUP]["vpc.security.group.ids"] = ""
    with pytest.raises(DeployConfigError, match="set both vpc.subnet.ids and vpc.security.group.ids"):
        load(groups)


def test_run_options_group_belongs_to_deploy():
    groups = example_groups()
    groups[RUN_OPTIONS_GROUP] = {"python": "main.py --flag"}
    with pytest.raises(DeployConfigError, match="set by deploy from the package layout"):
        load(groups)


def test_limits_are_checked_before_any_call():
    groups = example_groups()
    groups["rds"]["jdbc.url"] = "jdbc:postgresql://host/db?x=" + "a" * 2048
    with pytest.raises(DeployConfigError, match=r"'rds' key 'jdbc.url': values must be 1-2048 characters, got 2076"):
        load(groups)
    for number in range(50):
        groups[f"extra{number}"] = {"k": "v"}
    groups["rds"]["jdbc.url"] = "jdbc:postgresql://host/db"
    with pytest.raises(DeployConfigError, match="56 property groups, Managed Flink allows at most 50"):
        load(groups)


def test_limit_checks_cover_keys_and_group_ids():
    problems = settings.property_limit_problems([
        {"PropertyGroupId": "g", "PropertyMap": {f"k{i}": "v" for i in range(51)}},
        {"PropertyGroupId": "bad id!", "PropertyMap": {"k" * 2049: "v"}},
    ])
    assert problems == [
        "property group 'g': 51 keys, at most 50 allowed",
        "property group 'bad id!': the id must be 1-50 of a-z A-Z 0-9 _ . -",
        f"property group 'bad id!' key '{'k' * 60}': keys must be 1-2048 characters",
    ]


def test_unknown_groups_are_sent_with_a_warning(caplog):
    groups = example_groups()
    groups["team"] = {"owner": "features"}
    sent = [g["PropertyGroupId"] for g in load(groups).runtime_properties]
    assert "team" in sent
    assert "property group 'team' is not read by the job" in caplog.text


def test_example_file_is_valid_json_list():
    assert isinstance(json.loads(EXAMPLE.read_text()), list)
