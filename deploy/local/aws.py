"""boto3 clients for the configured endpoints: the same code talks to LocalStack, moto or AWS.

A local endpoint's clients come from localstack-client's Session, given the config's host:port as
its LOCALSTACK_HOST: dummy credentials (emulators accept any, and a developer's real keys must never
be sent to them). No endpoint means real AWS and boto3's usual credential chain.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config as BotoConfig
from localstack_client import config as localstack_config
from localstack_client.session import Session as LocalStackSession

from deploy.local.config import LocalSettings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "localstack", "host.docker.internal"}
DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def is_local(endpoint: str | None) -> bool:
    if not endpoint:
        return False
    host = urlparse(endpoint).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.") or host.endswith(".localhost.localstack.cloud")


def client(service: str, endpoint: str | None, region: str, *, path_style: bool = False,
           timeout: float = 10.0, retries: int = 3) -> Any:
    # Short timeouts: a local emulator answers in milliseconds or not at all.
    options: dict[str, Any] = {"connect_timeout": timeout, "read_timeout": timeout,
                               "retries": {"max_attempts": retries, "mode": "standard"}}
    if path_style:
        # bucket.127.0.0.1 does not resolve; emulators want http://host/bucket/key.
        options["s3"] = {"addressing_style": "path"}
    if endpoint and is_local(endpoint):
        return _local_client(service, endpoint, region, BotoConfig(**options))
    kwargs: dict[str, Any] = {"region_name": region, "config": BotoConfig(**options)}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client(service, **kwargs)


def _local_client(service: str, endpoint: str, region: str, config: BotoConfig) -> Any:
    host = urlparse(endpoint).netloc
    resolved = localstack_config.get_service_endpoint(service, host)
    if resolved != endpoint.rstrip("/"):
        # Inside localstack-client, AWS_ENDPOINT_URL (and USE_SSL) win over the host it is given;
        # the job reads the config, so the tools must not quietly talk to another endpoint.
        raise ValueError(f"the config's endpoint is {endpoint} but localstack-client resolves {service} to "
                         f"{resolved} (AWS_ENDPOINT_URL / USE_SSL in the environment); unset them or make them agree")
    session = LocalStackSession(localstack_host=host, region_name=region, **DUMMY_CREDENTIALS)
    return session.client(service, config=config)


def kinesis(settings: LocalSettings, **kwargs: Any) -> Any:
    return client("kinesis", settings.kinesis_endpoint, settings.region, **kwargs)


def s3(settings: LocalSettings, **kwargs: Any) -> Any:
    return client("s3", settings.s3_endpoint, settings.region, path_style=settings.s3_path_style, **kwargs)
