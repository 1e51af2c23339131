"""Derive each feature group's Flink sinks from its schema (jobs/definitions/schema.py): the
author writes no DDL.
  - Parquet (offline, training): <output.path>/<name>/dt=YYYYMMDD/hr=HH/, partitioned by the UTC
    hour of window_start, INT64 millisecond timestamps in UTC.
  - PostgreSQL (online, serving): table <name>, upserted on its key, so replays are idempotent.
  - progress markers (one per window) into both, and a counter of the rows each group emitted.
"""

from __future__ import annotations

from datetime import datetime

from jobs.definitions.config import Config
from jobs.definitions.replay import EPOCH
from jobs.definitions.schema import PROGRESS_TABLE, FeatureSchema


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
    jobs/definitions/replay.py). Always present, epoch by default, so the operator graph is the same with or
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
    passed its end, counting the rows the feature emitted for it (jobs/reads/point_in_time.py reads them).
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
