import json

import boto3
import pytest
from moto import mock_aws

from jobs.definitions.config import load
from jobs.postgres.credentials import Password, SecretError, jdbc_password, sink_password
from tests.unit.test_sql_catalog import ROOT

CONFIG = load(ROOT / "deploy" / "config" / "local.json", "run")  # rds.username "features"
KEY = "property group 'rds' key 'password.secret.arn'"


def with_secret(arn: str):
    return CONFIG.with_overrides({"rds": {"password.secret.arn": arn, "password": ""}})


@pytest.fixture
def secrets_manager(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def rds_secret(password: str, username: str = "features") -> str:
    return json.dumps({"username": username, "password": password, "engine": "postgres"})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_local_password_comes_from_the_config():
    assert jdbc_password(CONFIG) == sink_password(CONFIG) == "local-dev-only"


def test_password_from_secrets_manager(secrets_manager):
    arn = secrets_manager.create_secret(Name="rds", SecretString=rds_secret("s3cr3t"))["ARN"]
    assert jdbc_password(with_secret(arn)) == "s3cr3t"
    assert sink_password(with_secret(arn)) == ""  # the sinks' driver reads the secret itself


@pytest.mark.parametrize("secret, message", [
    ("plain-text", "the secret must be JSON with string 'username' and 'password' fields"),
    (json.dumps({"password": "s3cr3t"}), "the secret must be JSON with string 'username' and 'password' fields"),
    (rds_secret("s3cr3t", username="someone-else"), "the secret's username is not the one in property group 'rds' key 'username'"),
])
def test_a_secret_the_jdbc_driver_cannot_use_is_refused_without_its_value(secrets_manager, secret, message):
    arn = secrets_manager.create_secret(Name="rds", SecretString=secret)["ARN"]
    with pytest.raises(SecretError, match=f"{KEY}: {message}") as error:
        sink_password(with_secret(arn))
    assert "s3cr3t" not in str(error.value)


def test_missing_secret_names_the_key_not_the_value(secrets_manager):
    with pytest.raises(SecretError, match=f"{KEY}: cannot read the secret"):
        jdbc_password(with_secret("arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf"))


def test_the_secret_is_cached_briefly_then_read_again(secrets_manager):
    arn = secrets_manager.create_secret(Name="rds", SecretString=rds_secret("old"))["ARN"]
    clock = Clock()
    password = Password(with_secret(arn), max_age_seconds=60, clock=clock)
    assert password.current() == "old"
    secrets_manager.put_secret_value(SecretId=arn, SecretString=rds_secret("new"))
    clock.now = 59
    assert password.current() == "old"
    clock.now = 60
    assert password.current() == "new"


def test_a_failed_login_after_a_rotation_reads_the_secret_again_and_retries(secrets_manager):
    arn = secrets_manager.create_secret(Name="rds", SecretString=rds_secret("old"))["ARN"]
    password = Password(with_secret(arn))
    assert password.current() == "old"
    secrets_manager.put_secret_value(SecretId=arn, SecretString=rds_secret("new"))  # rotated; still cached
    tried = []

    def login(value: str) -> str:
        tried.append(value)
        if value != "new":
            raise ConnectionError("password authentication failed")
        return "connected"

    assert password.connect(login) == "connected"
    assert tried == ["old", "new"]


def test_a_failed_login_with_an_unchanged_secret_is_not_retried(secrets_manager):
    arn = secrets_manager.create_secret(Name="rds", SecretString=rds_secret("same"))["ARN"]
    tried = []

    def database_down(value: str) -> str:
        tried.append(value)
        raise ConnectionError("connection refused")

    with pytest.raises(ConnectionError, match="connection refused"):
        Password(with_secret(arn)).connect(database_down)
    assert tried == ["same"]


def test_a_failed_login_with_the_local_password_reads_nothing():
    def refused(value: str) -> str:
        raise ConnectionError("password authentication failed")

    with pytest.raises(ConnectionError):
        Password(CONFIG).connect(refused)  # no Secrets Manager call: no credentials or endpoint needed
