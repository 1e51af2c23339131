"""PostgreSQL side of the online store: connecting from the JDBC URL, creating and migrating the
feature tables derived from the feature SQL.

Migration is additive and safe to re-run: a missing table is created, a new feature column is
added (NULL for rows written before it); a column whose type changed, or a changed key, stops with
a message saying what to do by hand, because rewriting live serving data is not something to
do silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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


def plan_migration(schema: FeatureSchema, existing: dict[str, ExistingColumn]) -> list[str]:
    """The statements that bring the table in line with the feature SQL (empty: nothing to do)."""
    if not existing:
        return [postgres_table_ddl(schema)]
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
            statements.append(f"ALTER TABLE {schema.name} ADD COLUMN {column.name} {column.postgres_type}")
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


def _plan_progress_table(existing: dict[str, ExistingColumn]) -> list[str]:
    """Create the progress table, or add the columns newer versions of the job write."""
    if not existing:
        return [postgres_progress_ddl()]
    return [f"ALTER TABLE {PROGRESS_TABLE} ADD COLUMN {name} {kind}"
            for name, kind in PROGRESS_POSTGRES_COLUMNS.items() if name not in existing]


def migrate(connection, schemas: list[FeatureSchema], dry_run: bool) -> list[str]:
    """Plan every table first (so nothing changes when one of them cannot be migrated), then apply.

    Besides each feature's table: its window_end index (reads and pruning) and the shared table
    of progress markers (jobs/point_in_time.py)."""
    with connection.cursor() as cursor:
        planned = []
        for schema in schemas:
            planned += plan_migration(schema, existing_columns(cursor, schema.name))
            if not _has_window_index(cursor, schema.name):
                planned.append(postgres_window_index_ddl(schema))
        planned += _plan_progress_table(existing_columns(cursor, PROGRESS_TABLE))
        if not dry_run:
            for statement in planned:
                cursor.execute(statement)
    if not dry_run:
        connection.commit()
    return planned
