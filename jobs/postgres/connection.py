"""Connecting to the rds group's PostgreSQL: psycopg arguments for the reads and operations, and the
JVM's JDBC driver for the job's own commands.

The job's commands (migrate, and run's check of the tables) talk to PostgreSQL through the JVM's
JDBC driver, the one the sinks use: the job's Python on Managed Flink has no PostgreSQL client
(only pure-Python packages are bundled). The reads (jobs.reads.serving) use psycopg.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qsl, urlsplit

from jobs.definitions.config import Config, ConfigError


class DatabaseError(RuntimeError):
    """PostgreSQL refused a statement; the message names it."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL cannot be reached (or its driver loaded); the message says where."""


def connection_kwargs(config: Config, password: str) -> dict[str, str]:
    """psycopg connection arguments from the rds group's JDBC URL (never logged: has the password)."""
    url = config.get("rds", "jdbc.url")
    parts = urlsplit(url.removeprefix("jdbc:"))
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(f"property group 'rds' key 'jdbc.url': expected jdbc:postgresql://HOST[:PORT]/DATABASE, got '{url}'")
    kwargs = {"host": parts.hostname, "port": str(parts.port or 5432), "dbname": parts.path.strip("/"),
              "user": config.get("rds", "username"), "password": password}
    for key, value in parse_qsl(parts.query):
        if key in ("sslmode", "connect_timeout", "application_name"):
            kwargs[key] = value
    return kwargs


def database_name(config: Config) -> str:
    """host:port/database of the rds group, for messages."""
    kwargs = connection_kwargs(config, password="")
    return f"{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"


@contextmanager
def jdbc_connection(config: Config, password: str) -> Iterator["_JdbcConnection"]:
    """A connection to the rds group's database through the JVM's PostgreSQL JDBC driver (needs a
    TableEnvironment: its class loader holds the connector jar)."""
    from py4j.protocol import Py4JJavaError
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    properties = jvm.java.util.Properties()
    properties.setProperty("user", config.get("rds", "username"))
    properties.setProperty("password", password)
    try:
        loader = jvm.Thread.currentThread().getContextClassLoader()
        driver = jvm.Class.forName("org.postgresql.Driver", True, loader).newInstance()
    except Py4JJavaError:
        raise DatabaseUnavailable("the PostgreSQL JDBC driver is not on the job's class path (the connector jar)") from None
    try:
        connection = driver.connect(config.get("rds", "jdbc.url"), properties)
    except Py4JJavaError as error:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {database_name(config)} (property group 'rds'): "
                                  f"{error.java_exception.getMessage()}") from None
    try:
        connection.setAutoCommit(False)
        yield _JdbcConnection(connection)
    finally:
        connection.close()


class _JdbcConnection:
    """The few DB-API calls migrate() makes (cursor, execute with %s parameters, fetch, commit)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._rows: list[tuple] = []

    @contextmanager
    def cursor(self) -> Iterator["_JdbcConnection"]:
        yield self

    def commit(self) -> None:
        self._connection.commit()

    def execute(self, query: str, parameters: Sequence[str] = ()) -> None:
        from py4j.protocol import Py4JJavaError

        try:
            statement = self._connection.prepareStatement(query.replace("%s", "?"))
            try:
                for position, value in enumerate(parameters, start=1):
                    statement.setString(position, value)
                self._rows = self._read(statement.getResultSet()) if statement.execute() else []
            finally:
                statement.close()
        except Py4JJavaError as error:
            raise DatabaseError(f"PostgreSQL refused `{' '.join(query.split())}`: "
                                 f"{error.java_exception.getMessage()}") from None

    @staticmethod
    def _read(results: Any) -> list[tuple]:
        width = results.getMetaData().getColumnCount()
        rows = []
        while results.next():
            rows.append(tuple(results.getObject(column) for column in range(1, width + 1)))
        return rows

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None
