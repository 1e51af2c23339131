"""The PostgreSQL password: from AWS Secrets Manager when a secret ARN is configured (the cloud),
else from the config (local runs). The value is never logged.

A secret can be rotated while the job and the readers run, so it is read when a connection is
made, never baked in: the job's JDBC sinks connect through AWS's Secrets Manager JDBC driver (see
jobs/streaming/sinks.py), and Python connections ask a ``Password`` (cached briefly, read again after a
failed login). The secret must be JSON with ``username`` and ``password`` (as RDS writes it and
as the driver reads it); its username must be ``rds.username``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, TypeVar

from jobs.definitions.config import Config

log = logging.getLogger(__name__)

T = TypeVar("T")
SECRET_MAX_AGE_SECONDS = 300.0  # a cached secret is read again after this long
_KEY = "property group 'rds' key 'password.secret.arn'"


class SecretError(RuntimeError):
    """The secret could not be read; the message names the config key, never the value."""


def secret_region(arn: str) -> str | None:
    """The region of a Secrets Manager ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."""
    return arn.split(":")[3] if arn.count(":") >= 6 else None


class Password:
    """The password for new connections (thread-safe): the config's, or the secret's, read again
    once older than ``max_age_seconds`` and at once after a failed login."""

    def __init__(self, config: Config, max_age_seconds: float = SECRET_MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._arn = config.get("rds", "password.secret.arn")
        self._username = config.get("rds", "username")
        self._value = config.get("rds", "password") if not self._arn else None
        self._max_age, self._clock = max_age_seconds, clock
        self._read_at = 0.0
        self._client = None
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            if self._arn and (self._value is None or self._clock() - self._read_at >= self._max_age):
                self._read()
            return self._value

    def connect(self, open_connection: Callable[[str], T]) -> T:
        """``open_connection(password)``; if that fails and the secret has changed since it was read
        (a rotation), once more with the new value."""
        password = self.current()
        try:
            return open_connection(password)
        except Exception:
            if not self._arn:
                raise
            with self._lock:
                self._read()
                changed = self._value != password
            if not changed:
                raise
            log.info("PostgreSQL login failed and the secret has changed (rotated): connecting with the new value")
            return open_connection(self.current())

    def _read(self) -> None:
        self._value = _password_in(self._fetch(), self._username)
        self._read_at = self._clock()
        log.info("PostgreSQL password read from Secrets Manager")

    def _fetch(self) -> str:
        try:
            if self._client is None:
                import boto3  # only needed in the cloud

                self._client = boto3.client("secretsmanager", region_name=secret_region(self._arn))
            return self._client.get_secret_value(SecretId=self._arn)["SecretString"]
        except Exception as error:  # noqa: BLE001 - botocore raises many types; the message is enough
            raise SecretError(f"{_KEY}: cannot read the secret: {error}") from None


def _password_in(secret: str, username: str) -> str:
    try:
        parsed = json.loads(secret)
    except json.JSONDecodeError:
        parsed = None
    if not (isinstance(parsed, dict) and isinstance(parsed.get("username"), str)
            and isinstance(parsed.get("password"), str)):
        raise SecretError(f"{_KEY}: the secret must be JSON with string 'username' and 'password' fields "
                          "(as RDS writes it; the job's JDBC driver reads both)")
    if parsed["username"] != username:
        raise SecretError(f"{_KEY}: the secret's username is not the one in property group 'rds' key 'username' "
                          f"('{username}'); make them equal")
    return parsed["password"]


def jdbc_password(config: Config) -> str:
    """The password now, read once (for a command that connects once)."""
    return Password(config).current()


def sink_password(config: Config) -> str:
    """The JDBC sinks' 'password' option: the config's; with a secret none, because the driver
    reads the secret on each connect. Reading it here once checks, before any data is read, that
    the secret exists, can be read and names rds.username."""
    password = jdbc_password(config)
    return "" if config.get("rds", "password.secret.arn") else password
