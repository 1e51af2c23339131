"""How the project points at LocalStack: localstack-client's conventions and LocalStack's settings
(no server here; tests/integration/test_localstack.py runs the real one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deploy.local import aws, aws_endpoint, localstack
from deploy.local.config import LocalSettings, PostgresSettings
from deploy.local.state import StateDirs

SETTINGS = LocalSettings(region="us-east-1", kinesis_endpoint="http://127.0.0.1:4610", stream_name="s", shard_count=1,
                         s3_endpoint="http://127.0.0.1:4610", bucket="b", prefix="p", s3_path_style=True,
                         postgres=PostgresSettings("127.0.0.1", 5433, "d", "u", "p"), source_file=Path("c.json"),
                         checkpoint_dir=None)


@pytest.fixture(autouse=True)
def no_localstack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCALSTACK_HOST", "AWS_ENDPOINT_URL", "USE_SSL"):
        monkeypatch.delenv(name, raising=False)


def test_local_clients_come_from_localstack_client_with_dummy_credentials() -> None:
    kinesis = aws.client("kinesis", "http://127.0.0.1:4610", "eu-west-1")
    assert kinesis.meta.endpoint_url == "http://127.0.0.1:4610"
    assert kinesis.meta.region_name == "eu-west-1"
    assert kinesis._request_signer._credentials.access_key == "test"  # never a developer's real keys


def test_an_environment_endpoint_that_disagrees_with_the_config_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999")
    with pytest.raises(ValueError, match="127.0.0.1:9999"):
        aws.client("kinesis", "http://127.0.0.1:4610", "us-east-1")


def test_localstack_host_is_localstack_clients_endpoint() -> None:
    assert localstack.client_endpoint() == "http://localhost:4566"


def test_localstack_host_must_agree_with_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALSTACK_HOST", "127.0.0.1:4610")
    aws_endpoint._check_localstack_endpoints(SETTINGS)  # agrees: no error
    monkeypatch.setenv("LOCALSTACK_HOST", "127.0.0.1:4999")
    with pytest.raises(aws_endpoint.EndpointError, match="http://127.0.0.1:4999 but c.json says http://127.0.0.1:4610"):
        aws_endpoint._check_localstack_endpoints(SETTINGS)


def test_localstack_needs_a_local_endpoint_in_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALSTACK_HOST", "localhost:4577")
    on_aws = dataclasses.replace(SETTINGS, kinesis_endpoint=None, s3_endpoint=None)
    with pytest.raises(aws_endpoint.EndpointError, match="'source' key 'aws.endpoint'.* to http://localhost:4577"):
        aws_endpoint._check_localstack_endpoints(on_aws)


def test_localstack_runs_on_the_host_under_the_state_folder_and_creates_streams_at_once(tmp_path: Path) -> None:
    state = StateDirs(tmp_path)
    env = localstack.environment(state, "127.0.0.1", 4610)
    assert env["OVERRIDE_IN_DOCKER"] == "0"  # never the container layout (system folders)
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:4610" and env["SERVICES"] == "kinesis,s3"
    assert env["KINESIS_LATENCY"] == "0" and env["KINESIS_PERSISTENCE"] == "0"
    root = Path(env["FILESYSTEM_ROOT"])
    assert root.is_relative_to(tmp_path / "localstack")
    # kinesis-mock is found where LocalStack's package looks: <root>/var/lib/localstack/lib/kinesis-local/<version>
    assert (root / "var/lib/localstack/lib").resolve() == (tmp_path / "localstack" / "lib").resolve()


def test_a_start_without_the_install_installs_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`up --aws localstack` on a fresh clone: the one flag is enough."""
    steps: list[str] = []
    monkeypatch.setattr(localstack, "is_installed", lambda state: False)
    monkeypatch.setattr(localstack, "install", lambda state: steps.append("install") or 0.0)
    monkeypatch.setattr(localstack.process, "spawn", lambda *args, **kwargs: steps.append("spawn") or 4242)
    monkeypatch.setattr(localstack.process, "is_running", lambda pid: True)
    monkeypatch.setattr(localstack, "_serves_kinesis_and_s3", lambda url: True)
    assert localstack.start(StateDirs(tmp_path), "127.0.0.1", 4610) == 4242
    assert steps == ["install", "spawn"]
