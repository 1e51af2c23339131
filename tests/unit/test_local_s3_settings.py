"""The local S3 filesystem's settings: an emulator's keys go into them (a JVM started earlier in
this process has none in its environment); AWS endpoints keep AWS's own credential chain."""

from jobs.definitions.config import validate
from jobs.streaming.environment import _s3_options
from tests.unit.test_config import groups


def test_an_emulator_endpoint_gets_the_emulator_keys(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    config = validate(groups(output__s3_endpoint="http://127.0.0.1:4566"), "run", "x.json")
    assert _s3_options(config) == {"s3.endpoint": "http://127.0.0.1:4566", "s3.path.style.access": "true",
                                   "s3.access-key": "test", "s3.secret-key": "test-secret"}


def test_an_aws_endpoint_gets_no_keys(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    config = validate(groups(output__s3_endpoint="https://s3.us-east-1.amazonaws.com"), "run", "x.json")
    assert "s3.access-key" not in _s3_options(config) and "s3.secret-key" not in _s3_options(config)
