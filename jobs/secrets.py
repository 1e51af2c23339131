"""The PostgreSQL password: from AWS Secrets Manager when a secret ARN is configured (the cloud),
else from the config (local runs). The value is never logged."""

from __future__ import annotations

import json
import logging

from jobs.config import Config

log = logging.getLogger(__name__)


class SecretError(RuntimeError):
    """The secret could not be read; the message names the config key, never the value."""


def jdbc_password(config: Config) -> str:
    arn = config.get("rds", "password.secret.arn")
    if not arn:
        return config.get("rds", "password")
    import boto3  # only needed in the cloud

    region = arn.split(":")[3] if arn.count(":") >= 6 else None
    try:
        secret = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=arn)["SecretString"]
    except Exception as error:  # noqa: BLE001 - botocore raises many types; the message is enough
        raise SecretError(f"property group 'rds' key 'password.secret.arn': cannot read the secret: {error}") from None
    log.info("PostgreSQL password read from Secrets Manager")
    # RDS-managed secrets are JSON with a "password" field; a plain string is taken as is.
    try:
        parsed = json.loads(secret)
    except json.JSONDecodeError:
        return secret
    if isinstance(parsed, dict) and isinstance(parsed.get("password"), str):
        return parsed["password"]
    raise SecretError("property group 'rds' key 'password.secret.arn': the secret is JSON without a string 'password' field")
