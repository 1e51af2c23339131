"""deploy/iam/ is what the generator makes from deploy/config/aws.example.json, and names exactly
the configured resources."""

import json
from pathlib import Path

import pytest

from deploy.managed_flink import iam, settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "aws.example.json"


@pytest.fixture(scope="module")
def conf():
    return settings.load(EXAMPLE)


@pytest.mark.parametrize("name", iam.FILES)
def test_checked_in_policy_equals_the_generated_one(conf, name):
    checked_in = (ROOT / "deploy" / "iam" / name).read_text()
    assert checked_in == iam.render(iam.policies(conf)[name]), (
        f"deploy/iam/{name} is stale: python -m deploy.managed_flink iam --config {EXAMPLE.relative_to(ROOT)} "
        "--out-dir deploy/iam")


def statements(policy):
    return {s["Sid"]: s for s in policy["Statement"]}


def test_application_policy_names_only_the_configured_resources(conf):
    by_sid = statements(iam.application_policy(conf))
    assert by_sid["ReadSourceStream"]["Resource"] == ["arn:aws:kinesis:us-east-1:123456789012:stream/user-events"]
    assert not any(a.startswith("kinesis:Put") for a in by_sid["ReadSourceStream"]["Action"])
    assert by_sid["ReadApplicationCode"]["Resource"] == ["arn:aws:s3:::example-flink-artifacts/feature-pipeline/*"]
    assert by_sid["WriteOutputPrefix"]["Resource"] == ["arn:aws:s3:::example-feature-store/features/*"]
    assert by_sid["ListOutputPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["features", "features/*"]}}
    assert by_sid["ReadDatabasePassword"] == {
        "Sid": "ReadDatabasePassword", "Effect": "Allow", "Action": ["secretsmanager:DescribeSecret",
                                                                             "secretsmanager:GetSecretValue"],
        "Resource": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:feature-pipeline/postgres-AbCdEf"]}
    assert by_sid["WriteLogs"]["Resource"] == [conf.log_stream_arn]
    assert "VpcNetworkInterfaces" in by_sid
    wildcard = [s["Sid"] for s in by_sid.values() if s["Resource"] == "*"]
    assert wildcard == ["PublishMetrics", "VpcReadOnly", "VpcNetworkInterfaces"]


def test_without_vpc_there_are_no_ec2_permissions():
    groups = json.loads(EXAMPLE.read_text())
    deploy = next(g for g in groups if g["PropertyGroupId"] == "deploy")["PropertyMap"]
    deploy["vpc.subnet.ids"] = deploy["vpc.security.group.ids"] = ""
    conf = settings.from_groups({g["PropertyGroupId"]: g["PropertyMap"] for g in groups}, "cfg.json")
    assert "ec2:" not in json.dumps(iam.application_policy(conf))


def test_trust_policy_is_limited_to_this_application(conf):
    (statement,) = iam.trust_policy(conf)["Statement"]
    assert statement["Principal"] == {"Service": "kinesisanalytics.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == conf.application_arn


def test_deployer_may_pass_only_this_role_to_managed_flink(conf):
    by_sid = statements(iam.deployer_policy(conf))
    assert by_sid["PassRole"]["Resource"] == [conf.service_role_arn]
    assert by_sid["PassRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "kinesisanalytics.amazonaws.com"}}
    assert by_sid["ManageApplication"]["Resource"] == [conf.application_arn]
