"""What a feature group stores: its output columns, their types and its key, checked once.

A feature's output columns are user_id, window_start, window_end and its feature columns. The key
comes from the SELECT's GROUP BY (jobs.definitions.feature_specs.key_of): (user_id, window_end,
window_start) plus any other grouped column it outputs; every other column is a value, whatever
its type (MAX(event_type) is a nullable text value). The sinks (jobs/streaming/sinks.py), the
PostgreSQL tables (jobs/postgres/tables.py) and the reads all derive from this schema.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED_COLUMNS = ("user_id", "window_start", "window_end")

# Flink type (as printed by the planner) -> PostgreSQL column type.
_POSTGRES_TYPES = {
    "BIGINT": "bigint",
    "INT": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "smallint",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "STRING": "text",
    "DATE": "date",
    "TIMESTAMP(3)": "timestamp(3)",
}


class FeatureSchemaError(ValueError):
    """A feature SELECT whose output cannot be stored; the message names the file."""


@dataclass(frozen=True)
class Column:
    name: str
    flink_type: str  # as the planner prints it, NOT NULL stripped, e.g. "BIGINT", "TIMESTAMP(3)"
    nullable: bool

    @property
    def postgres_type(self) -> str:
        if self.flink_type.startswith("DECIMAL"):
            return self.flink_type.replace("DECIMAL", "numeric")
        if self.flink_type.startswith("VARCHAR"):
            return "text"
        return _POSTGRES_TYPES[self.flink_type]


@dataclass(frozen=True)
class FeatureSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the upsert key, from the SELECT's GROUP BY

    @property
    def values(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name not in self.key)


def check_schema(name: str, where: str, columns: list[Column], key: tuple[str, ...]) -> FeatureSchema:
    """Refuse outputs the sinks cannot store, naming the feature file."""
    names = [c.name for c in columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise FeatureSchemaError(f"{where}: feature '{name}' must output {', '.join(missing)} (got {', '.join(names)})")
    for column in key:
        if column not in names:
            raise FeatureSchemaError(f"{where}: feature '{name}' key column {column} is not among its output "
                                     f"columns ({', '.join(names)})")
    for column in columns:
        if column.name in ("window_start", "window_end") and column.flink_type != "TIMESTAMP(3)":
            raise FeatureSchemaError(
                f"{where}: feature '{name}' column {column.name} must be TIMESTAMP(3) (a window TVF's "
                f"window_start/window_end), got {column.flink_type}"
            )
        if column.name in ("dt", "hr"):
            raise FeatureSchemaError(f"{where}: feature '{name}': column name '{column.name}' is reserved for partitions")
        try:
            column.postgres_type
        except KeyError:
            raise FeatureSchemaError(
                f"{where}: feature '{name}' column {column.name} has type {column.flink_type}, which the sinks "
                f"do not store; cast it to one of {', '.join(sorted(_POSTGRES_TYPES))} or DECIMAL"
            ) from None
    if len(columns) == len(REQUIRED_COLUMNS):
        raise FeatureSchemaError(f"{where}: feature '{name}' has no feature columns")
    return FeatureSchema(name, tuple(columns), key)


PROGRESS_TABLE = "feature_progress"  # PostgreSQL; Parquet: <output.path>/_progress/<feature>/
