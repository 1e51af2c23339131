"""The PostgreSQL tables of the online store, derived from the feature SQL: their DDL, and the
migration that creates and extends them.

Migration is additive and safe to re-run: a missing table is created, a new feature column is
added (NULL for rows written before it); a column whose type changed, or a changed key, stops with
a message saying what to do by hand, because rewriting live serving data is not something to
do silently.

``migrate`` takes any DB-API connection: the job's commands pass the JVM's JDBC one
(jobs/postgres/connection.py), the tests psycopg's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobs.definitions.schema import PROGRESS_TABLE, FeatureSchema
from jobs.postgres.connection import DatabaseError

log = logging.getLogger(__name__)

# information_schema spelling of the types jobs/definitions/schema.py maps to.
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


class MigrationError(DatabaseError):
    """A change the migration will not make by itself; the message says what to do."""


@dataclass(frozen=True)
class Change:
    """One statement of a migration and what it adds, e.g. "table user_activity_5m"."""

    adds: str
    statement: str


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
    of progress markers (jobs/reads/point_in_time.py)."""
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


def postgres_table_ddl(schema: FeatureSchema) -> str:
    """The PostgreSQL table a feature upserts into (timestamps are UTC wall-clock)."""
    columns = ",\n  ".join(
        f"{c.name} {c.postgres_type}{'' if c.nullable and c.name not in schema.key else ' NOT NULL'}"
        for c in schema.columns
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {schema.name} (\n  {columns},\n"
        f"  PRIMARY KEY ({', '.join(schema.key)})\n)"
    )


PROGRESS_POSTGRES_COLUMNS = {"feature_group": "text NOT NULL", "window_start": "timestamp(3) NOT NULL",
                             "window_end": "timestamp(3) NOT NULL", "row_count": "bigint NOT NULL",
                             "emitted_at": "timestamp(3)", "served_from": "timestamp(3)"}


def postgres_progress_ddl() -> str:
    """The table of progress markers every feature group writes (see progress_view)."""
    columns = ",\n  ".join(f"{name} {kind}" for name, kind in PROGRESS_POSTGRES_COLUMNS.items())
    return f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\n  {columns},\n  PRIMARY KEY (feature_group, window_end)\n)"


def postgres_window_index_ddl(schema: FeatureSchema) -> str:
    """The index that keeps completeness checks and retention pruning (by window_end) fast."""
    return f"CREATE INDEX IF NOT EXISTS {schema.name}_window_end_idx ON {schema.name} (window_end)"
