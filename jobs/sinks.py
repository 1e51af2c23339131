"""Derive each feature group's sinks from its SELECT's schema: the author writes no DDL.

A feature's output columns are user_id, window_start, window_end and its feature columns.
  - Parquet (offline, training): <output.path>/<name>/dt=YYYYMMDD/hr=HH/, partitioned by the UTC
    hour of window_start, INT64 millisecond timestamps in UTC.
  - PostgreSQL (online, serving): table <name>, upserted on its key, so replays are idempotent.
The key comes from the SELECT's GROUP BY (jobs.feature_specs.key_of): (user_id, window_end,
window_start) plus any other grouped column it outputs; every other column is a value, whatever
its type (MAX(event_type) is a nullable text value).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobs.config import Config
from jobs.replay import EPOCH

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


def _column_list(schema: FeatureSchema) -> str:
    return ",\n  ".join(f"`{c.name}` {c.flink_type}" for c in schema.columns)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _with(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_sql_string(k)} = {_sql_string(v)}" for k, v in options.items())


PARQUET_TIME_OPTIONS = {
    "format": "parquet",
    "parquet.utc-timezone": "true",
    "parquet.write.int64.timestamp": "true",
    "parquet.timestamp.time.unit": "millis",
}


def _after(moment: datetime) -> str:
    """The filter that writes only windows ending after ``moment`` (a replay upgrade's cut-over,
    jobs/replay.py). Always present, epoch by default, so the operator graph is the same with or
    without a cut-over."""
    return f"WHERE window_end > TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S}'"


def parquet_sink(schema: FeatureSchema, root: str, commit_delay_minutes: int | None,
                 after: datetime = EPOCH) -> tuple[str, str]:
    """DDL and INSERT of the Parquet copy, partitioned dt=YYYYMMDD/hr=HH by window_start (UTC).

    ``commit_delay_minutes`` None: no partition commits (a bounded backfill commits at its end).
    """
    table = f"{schema.name}__parquet"
    options = {"connector": "filesystem", "path": f"{root}/{schema.name}", **PARQUET_TIME_OPTIONS}
    if commit_delay_minutes is not None:
        # A partition (one hour of window starts) is complete once the watermark passes its end
        # plus the longest window; a _SUCCESS file then marks it for readers.
        options.update({
            "partition.time-extractor.timestamp-pattern": "$dt $hr:00:00",
            "partition.time-extractor.timestamp-formatter": "yyyyMMdd HH:mm:ss",
            "sink.partition-commit.trigger": "partition-time",
            "sink.partition-commit.delay": f"{commit_delay_minutes} min",
            "sink.partition-commit.watermark-time-zone": "UTC",
            "sink.partition-commit.policy.kind": "success-file",
            "auto-compaction": "true",
        })
    ddl = (
        f"CREATE TEMPORARY TABLE `{table}` (\n  {_column_list(schema)},\n  `dt` STRING,\n  `hr` STRING\n)"
        f" PARTITIONED BY (`dt`, `hr`) WITH (\n  {_with(options)}\n)"
    )
    insert = (
        f"INSERT INTO `{table}` SELECT *, DATE_FORMAT(window_start, 'yyyyMMdd'), "
        f"DATE_FORMAT(window_start, 'HH') FROM `{schema.name}` {_after(after)}"
    )
    return ddl, insert


# AWS's Secrets Manager JDBC driver (deploy/pom.xml): user = the secret, read on each connect.
SECRETS_MANAGER_DRIVER = "com.amazonaws.secretsmanager.sql.AWSSecretsManagerPostgreSQLDriver"


def _jdbc_options(config: Config, password: str, table_name: str) -> dict[str, str]:
    """Connection and retry options every PostgreSQL sink shares.

    With a secret, the sink connects through the Secrets Manager driver: it reads the secret on
    each connect (cached) and again after a failed login, so a rotated password reaches the
    running job when the sink reconnects. Its URL scheme is jdbc-secretsmanager:, which the
    connector maps to its PostgreSQL dialect through deploy/src's SecretsManagerPostgresFactory."""
    options = {
        "connector": "jdbc",
        "url": config.get("rds", "jdbc.url"),
        "table-name": table_name,
        "username": config.get("rds", "username"),
        "password": password,
        "sink.max-retries": config.get("rds", "max.retries"),
    }
    secret = config.get("rds", "password.secret.arn")
    if secret:  # the driver ignores the password option: user and password come from the secret
        options.update({"url": "jdbc-secretsmanager:" + options["url"].removeprefix("jdbc:"),
                        "driver": SECRETS_MANAGER_DRIVER, "username": secret, "password": ""})
    return options


def jdbc_sink(schema: FeatureSchema, config: Config, password: str, after: datetime = EPOCH,
              flush_interval_ms: int | None = None) -> tuple[str, str]:
    """DDL and INSERT of the PostgreSQL upsert sink (table name = feature name); it flushes every
    ``flush_interval_ms`` (default rds.flush.interval.ms)."""
    table = f"{schema.name}__rds"
    flush_ms = config.get_int("rds", "flush.interval.ms") if flush_interval_ms is None else flush_interval_ms
    options = {
        **_jdbc_options(config, password, schema.name),
        "sink.buffer-flush.max-rows": config.get("rds", "batch.size"),
        "sink.buffer-flush.interval": f"{flush_ms} ms",
    }
    key = ", ".join(f"`{c}`" for c in schema.key)
    ddl = (
        f"CREATE TEMPORARY TABLE `{table}` (\n  {_column_list(schema)},\n  PRIMARY KEY ({key}) NOT ENFORCED\n)"
        f" WITH (\n  {_with(options)}\n)"
    )
    return ddl, f"INSERT INTO `{table}` SELECT * FROM `{schema.name}` {_after(after)}"


PROGRESS_TABLE = "feature_progress"  # PostgreSQL; Parquet: <output.path>/_progress/<feature>/
PROGRESS_COLUMNS = ("`feature_group` STRING,\n  `window_start` TIMESTAMP(3),\n  `window_end` TIMESTAMP(3),\n"
                    "  `row_count` BIGINT,\n  `emitted_at` TIMESTAMP(3),\n  `served_from` TIMESTAMP(3)")
# How long after its marker a window's rows are surely in PostgreSQL too: the feature's JDBC sink
# flushes at least every rds.flush.interval.ms; the rest is headroom for the write itself.
ROWS_SETTLE_MS = 1000


def served_from_delay_seconds(config: Config) -> int:
    """Whole seconds (rounded up) from a marker's emission to when the reads may serve its window."""
    flush_ms = config.get_int("rds", "flush.interval.ms") if "rds" in config.groups else 1000
    return -(-(flush_ms + ROWS_SETTLE_MS) // 1000)


def progress_view(schema: FeatureSchema, served_from_delay: int) -> tuple[str, str]:
    """Name and query of the feature's progress markers: one row per window, once the watermark has
    passed its end, counting the rows the feature emitted for it (jobs/point_in_time.py reads them).
    Grouping a window aggregate's output by its window bounds is itself a window aggregate in
    Flink, so each marker is emitted exactly once, after its window's rows. ``emitted_at`` is the
    wall clock (UTC) when the marker left the job; ``served_from`` is when its rows have surely
    reached PostgreSQL too: the reads serve the window from then on, online and offline alike.
    The planner evaluates the clock once per sink; served_from is rounded up to whole seconds so
    the PostgreSQL and Parquet copies of a marker agree."""
    name = f"{schema.name}__progress"
    counted = (f"SELECT {_sql_string(schema.name)} AS feature_group, window_start, window_end, COUNT(*) AS row_count "
               f"FROM `{schema.name}` GROUP BY window_start, window_end")
    return name, (f"SELECT feature_group, window_start, window_end, row_count, emitted_at, "
                  f"TIMESTAMPADD(SECOND, {served_from_delay}, CEIL(emitted_at TO SECOND)) AS served_from "
                  f"FROM (SELECT *, CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)) AS emitted_at FROM ({counted}))")


def parquet_progress_sink(schema: FeatureSchema, root: str, after: datetime = EPOCH) -> tuple[str, str]:
    """Markers next to the Parquet copy, partitioned dt=YYYYMMDD by window_start like the features."""
    table = f"{schema.name}__progress_parquet"
    options = {"connector": "filesystem", "path": f"{root}/_progress/{schema.name}", **PARQUET_TIME_OPTIONS}
    ddl = (f"CREATE TEMPORARY TABLE `{table}` (\n  {PROGRESS_COLUMNS},\n  `dt` STRING\n)"
           f" PARTITIONED BY (`dt`) WITH (\n  {_with(options)}\n)")
    insert = (f"INSERT INTO `{table}` SELECT *, DATE_FORMAT(window_start, 'yyyyMMdd') "
              f"FROM `{schema.name}__progress` {_after(after)}")
    return ddl, insert


def jdbc_progress_sink(schema: FeatureSchema, config: Config, password: str, after: datetime = EPOCH) -> tuple[str, str]:
    """Markers into PostgreSQL table feature_progress: one writer, every marker flushed on arrival,
    so a group's markers become visible in window order (point_in_time relies on it)."""
    table = f"{schema.name}__progress_rds"
    options = {**_jdbc_options(config, password, PROGRESS_TABLE), "sink.buffer-flush.max-rows": "1",
               "sink.parallelism": "1"}
    ddl = (f"CREATE TEMPORARY TABLE `{table}` (\n  {PROGRESS_COLUMNS},\n"
           f"  PRIMARY KEY (`feature_group`, `window_end`) NOT ENFORCED\n) WITH (\n  {_with(options)}\n)")
    return ddl, f"INSERT INTO `{table}` SELECT * FROM `{schema.name}__progress` {_after(after)}"


def counter_sink(schema: FeatureSchema) -> tuple[str, str]:
    """A blackhole sink whose numRecordsIn metric counts the rows this feature group emitted."""
    table = f"{schema.name}__counter"
    return (f"CREATE TEMPORARY TABLE `{table}` (`n` INT) WITH ('connector' = 'blackhole')",
            f"INSERT INTO `{table}` SELECT 1 FROM `{schema.name}`")


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
