"""boto3 clients for the configured endpoints: the same code talks to LocalStack, moto or AWS.

A local endpoint gets dummy credentials (emulators accept any, and a developer's real keys must
never be sent to them); no endpoint means real AWS and boto3's usual credential chain.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config as BotoConfig

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
    kwargs: dict[str, Any] = {"region_name": region, "config": BotoConfig(**options)}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if is_local(endpoint):
        kwargs.update(DUMMY_CREDENTIALS)
    return boto3.client(service, **kwargs)


def kinesis(settings: LocalSettings, **kwargs: Any) -> Any:
    return client("kinesis", settings.kinesis_endpoint, settings.region, **kwargs)


def s3(settings: LocalSettings, **kwargs: Any) -> Any:
    return client("s3", settings.s3_endpoint, settings.region, path_style=settings.s3_path_style, **kwargs)
