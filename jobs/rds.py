"""PostgreSQL side of the online store: connecting from the JDBC URL, creating and migrating the
feature tables derived from the feature SQL.

Migration is additive and safe to re-run: a missing table is created, a new feature column is
added (NULL for rows written before it); a column whose type changed, or a changed key, stops with
a message saying what to do by hand, because rewriting live serving data is not something to
do silently.

The job's commands (migrate, and run's check of the tables) talk to PostgreSQL through the JVM's
JDBC driver, the one the sinks use: the job's Python on Managed Flink has no PostgreSQL client
(only pure-Python packages are bundled). The reads (jobs.serving) use psycopg.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qsl, urlsplit

from jobs.config import Config, ConfigError
from jobs.sinks import (PROGRESS_POSTGRES_COLUMNS, PROGRESS_TABLE, FeatureSchema, postgres_progress_ddl,
                         postgres_table_ddl, postgres_window_index_ddl)

log = logging.getLogger(__name__)

# information_schema spelling of the types jobs.sinks maps to.
_CATALOG_TYPE_NAMES = {
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "double precision": "double precision",
    "real": "real",
    "boolean": "boolean",
    "text": "text",
    "date": "date",
    "timestamp(3)": "timestamp without time zone",
}


class MigrationError(RuntimeError):
    """A change the migration will not make by itself; the message says what to do."""


class DatabaseUnavailable(MigrationError):
    """PostgreSQL cannot be reached (or its driver loaded); the message says where."""


@dataclass(frozen=True)
class Change:
    """One statement of a migration and what it adds, e.g. "table user_activity_5m"."""

    adds: str
    statement: str


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


@dataclass(frozen=True)
class ExistingColumn:
    name: str
    data_type: str
    key: bool


def existing_columns(cursor, table: str) -> dict[str, ExistingColumn]:
    cursor.execute(
        """
        SELECT c.column_name, c.data_type,
               EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                       JOIN information_schema.table_constraints t
                         ON t.constraint_name = k.constraint_name AND t.table_schema = k.table_schema
                       WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema
                         AND k.table_name = c.table_name AND k.column_name = c.column_name)
        FROM information_schema.columns c
        WHERE c.table_schema = current_schema() AND c.table_name = %s
        ORDER BY c.ordinal_position
        """,
        (table,),
    )
    return {name: ExistingColumn(name, data_type, key) for name, data_type, key in cursor.fetchall()}


def database_name(config: Config) -> str:
    """host:port/database of the rds group, for messages."""
    kwargs = connection_kwargs(config, password="")
    return f"{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"


def plan_migration(schema: FeatureSchema, existing: dict[str, ExistingColumn]) -> list[Change]:
    """The changes that bring the table in line with the feature SQL (empty: nothing to do)."""
    if not existing:
        return [Change(f"table {schema.name}", postgres_table_ddl(schema))]
    existing_key = {c.name for c in existing.values() if c.key}
    if existing_key != set(schema.key):
        raise MigrationError(
            f"table {schema.name}: key is ({', '.join(sorted(existing_key))}) in PostgreSQL but the feature SQL "
            f"gives ({', '.join(schema.key)}); create a new feature group (new file name) instead"
        )
    statements = []
    for column in schema.values:
        current = existing.get(column.name)
        wanted = _CATALOG_TYPE_NAMES.get(column.postgres_type, column.postgres_type)
        if current is None:
            statements.append(Change(f"column {schema.name}.{column.name}",
                                     f"ALTER TABLE {schema.name} ADD COLUMN {column.name} {column.postgres_type}"))
        elif not wanted.startswith(current.data_type):
            raise MigrationError(
                f"table {schema.name} column {column.name}: {current.data_type} in PostgreSQL, {column.postgres_type} in "
                f"the feature SQL; change it by hand (ALTER TABLE {schema.name} ALTER COLUMN {column.name} TYPE "
                f"{column.postgres_type}) or use a new column name"
            )
    wanted_names = {c.name for c in schema.columns}
    for name in sorted(set(existing) - wanted_names):
        log.warning("table %s column %s is no longer written by the feature SQL; left in place", schema.name, name)
    return statements


def _has_window_index(cursor, table: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s AND indexname = %s",
                   (table, f"{table}_window_end_idx"))
    return cursor.fetchone() is not None


def _plan_progress_table(existing: dict[str, ExistingColumn]) -> list[Change]:
    """Create the progress table, or add the columns newer versions of the job write."""
    if not existing:
        return [Change(f"table {PROGRESS_TABLE}", postgres_progress_ddl())]
    return [Change(f"column {PROGRESS_TABLE}.{name}", f"ALTER TABLE {PROGRESS_TABLE} ADD COLUMN {name} {kind}")
            for name, kind in PROGRESS_POSTGRES_COLUMNS.items() if name not in existing]


def migrate(connection, schemas: list[FeatureSchema], dry_run: bool) -> list[Change]:
    """Plan every table first (so nothing changes when one of them cannot be migrated), then apply.

    Besides each feature's table: its window_end index (reads and pruning) and the shared table
    of progress markers (jobs/point_in_time.py)."""
    with connection.cursor() as cursor:
        planned = []
        for schema in schemas:
            existing = existing_columns(cursor, schema.name)
            planned += plan_migration(schema, existing)
            if not existing or not _has_window_index(cursor, schema.name):
                adds = f"index {schema.name}_window_end_idx" if existing else f"table {schema.name}"
                planned.append(Change(adds, postgres_window_index_ddl(schema)))
        planned += _plan_progress_table(existing_columns(cursor, PROGRESS_TABLE))
        if not dry_run:
            for change in planned:
                cursor.execute(change.statement)
    if not dry_run:
        connection.commit()
    return planned


def missing(changes: list[Change]) -> str:
    """What a migration adds, each named once: "table a, column b.c"."""
    return ", ".join(dict.fromkeys(change.adds for change in changes))


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
            raise MigrationError(f"PostgreSQL refused `{' '.join(query.split())}`: "
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
