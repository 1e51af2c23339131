"""Derive each feature group's sinks from its SELECT's schema: the author writes no DDL.

A feature's output columns are user_id, window_start, window_end and its feature columns.
  - Parquet (offline, training): <output.path>/<name>/dt=YYYYMMDD/hr=HH/, partitioned by the UTC
    hour of window_start, INT64 millisecond timestamps in UTC.
  - PostgreSQL (online, serving): table <name>, upserted on its key, so replays are idempotent.
The key is (user_id, window_end, window_start) plus any other text column (a feature grouped by
user_id and event_type, say); every other column is a value.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.config import Config

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

    @property
    def key(self) -> tuple[str, ...]:
        text_keys = tuple(
            c.name for c in self.columns if c.name not in REQUIRED_COLUMNS and c.postgres_type == "text"
        )
        return ("user_id", "window_end", "window_start") + text_keys

    @property
    def values(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name not in self.key)


def check_schema(name: str, where: str, columns: list[Column]) -> FeatureSchema:
    """Refuse outputs the sinks cannot store, naming the feature file."""
    names = [c.name for c in columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise FeatureSchemaError(f"{where}: feature '{name}' must output {', '.join(missing)} (got {', '.join(names)})")
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
    return FeatureSchema(name, tuple(columns))


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


def parquet_sink(schema: FeatureSchema, root: str, commit_delay_minutes: int | None) -> tuple[str, str]:
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
        f"DATE_FORMAT(window_start, 'HH') FROM `{schema.name}`"
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


def jdbc_sink(schema: FeatureSchema, config: Config, password: str) -> tuple[str, str]:
    """DDL and INSERT of the PostgreSQL upsert sink (table name = feature name)."""
    table = f"{schema.name}__rds"
    options = {
        **_jdbc_options(config, password, schema.name),
        "sink.buffer-flush.max-rows": config.get("rds", "batch.size"),
        "sink.buffer-flush.interval": f"{config.get('rds', 'flush.interval.ms')} ms",
    }
    key = ", ".join(f"`{c}`" for c in schema.key)
    ddl = (
        f"CREATE TEMPORARY TABLE `{table}` (\n  {_column_list(schema)},\n  PRIMARY KEY ({key}) NOT ENFORCED\n)"
        f" WITH (\n  {_with(options)}\n)"
    )
    return ddl, f"INSERT INTO `{table}` SELECT * FROM `{schema.name}`"


PROGRESS_TABLE = "feature_progress"  # PostgreSQL; Parquet: <output.path>/_progress/<feature>/
PROGRESS_COLUMNS = "`feature_group` STRING,\n  `window_start` TIMESTAMP(3),\n  `window_end` TIMESTAMP(3),\n  `row_count` BIGINT"


def progress_view(schema: FeatureSchema) -> tuple[str, str]:
    """Name and query of the feature's progress markers: one row per window, once the watermark has
    passed its end, counting the rows the feature emitted for it (jobs/point_in_time.py reads them).
    Grouping a window aggregate's output by its window bounds is itself a window aggregate in
    Flink, so each marker is emitted exactly once, after its window's rows."""
    name = f"{schema.name}__progress"
    return name, (f"SELECT {_sql_string(schema.name)} AS feature_group, window_start, window_end, COUNT(*) AS row_count "
                  f"FROM `{schema.name}` GROUP BY window_start, window_end")


def parquet_progress_sink(schema: FeatureSchema, root: str) -> tuple[str, str]:
    """Markers next to the Parquet copy, partitioned dt=YYYYMMDD by window_start like the features."""
    table = f"{schema.name}__progress_parquet"
    options = {"connector": "filesystem", "path": f"{root}/_progress/{schema.name}", **PARQUET_TIME_OPTIONS}
    ddl = (f"CREATE TEMPORARY TABLE `{table}` (\n  {PROGRESS_COLUMNS},\n  `dt` STRING\n)"
           f" PARTITIONED BY (`dt`) WITH (\n  {_with(options)}\n)")
    insert = (f"INSERT INTO `{table}` SELECT *, DATE_FORMAT(window_start, 'yyyyMMdd') "
              f"FROM `{schema.name}__progress`")
    return ddl, insert


def jdbc_progress_sink(schema: FeatureSchema, config: Config, password: str) -> tuple[str, str]:
    """Markers into PostgreSQL table feature_progress: one writer, every marker flushed on arrival,
    so a group's markers become visible in window order (point_in_time relies on it)."""
    table = f"{schema.name}__progress_rds"
    options = {**_jdbc_options(config, password, PROGRESS_TABLE), "sink.buffer-flush.max-rows": "1",
               "sink.parallelism": "1"}
    ddl = (f"CREATE TEMPORARY TABLE `{table}` (\n  {PROGRESS_COLUMNS},\n"
           f"  PRIMARY KEY (`feature_group`, `window_end`) NOT ENFORCED\n) WITH (\n  {_with(options)}\n)")
    return ddl, f"INSERT INTO `{table}` SELECT * FROM `{schema.name}__progress`"


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


def postgres_progress_ddl() -> str:
    """The table of progress markers every feature group writes (see progress_view)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\n  feature_group text NOT NULL,\n"
        "  window_start timestamp(3) NOT NULL,\n  window_end timestamp(3) NOT NULL,\n  row_count bigint NOT NULL,\n"
        "  PRIMARY KEY (feature_group, window_end)\n)"
    )


def postgres_window_index_ddl(schema: FeatureSchema) -> str:
    """The index that keeps completeness checks and retention pruning (by window_end) fast."""
    return f"CREATE INDEX IF NOT EXISTS {schema.name}_window_end_idx ON {schema.name} (window_end)"
