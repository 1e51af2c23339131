import json

import boto3
import pytest
from moto import mock_aws

from jobs.config import load
from jobs.secrets import SecretError, jdbc_password
from tests.unit.test_sql_catalog import ROOT

CONFIG = load(ROOT / "deploy" / "config" / "local.json", "run")


def with_secret(arn: str):
    return CONFIG.with_overrides({"rds": {"password.secret.arn": arn, "password": ""}})


def test_local_password_comes_from_the_config():
    assert jdbc_password(CONFIG) == "local-dev-only"


@mock_aws
@pytest.mark.parametrize("secret, expected", [(json.dumps({"username": "u", "password": "s3cr3t"}), "s3cr3t"),
                                              ("plain-text", "plain-text")])
def test_password_from_secrets_manager(secret, expected, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="rds", SecretString=secret)["ARN"]
    assert jdbc_password(with_secret(arn)) == expected


@mock_aws
def test_missing_secret_names_the_key_not_the_value(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with pytest.raises(SecretError, match="property group 'rds' key 'password.secret.arn': cannot read the secret"):
        jdbc_password(with_secret("arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf"))
