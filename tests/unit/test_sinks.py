import pytest

from jobs.definitions.config import load
from jobs.definitions.schema import Column, FeatureSchemaError, check_schema
from jobs.postgres.tables import postgres_table_ddl
from jobs.streaming.sinks import jdbc_sink, parquet_sink
from tests.unit.test_sql_catalog import ROOT

CONFIG = load(ROOT / "deploy" / "config" / "local.json", "run")
BASE = [Column("user_id", "STRING", True), Column("window_start", "TIMESTAMP(3)", False),
        Column("window_end", "TIMESTAMP(3)", False)]


KEY = ("user_id", "window_end", "window_start")


def schema(*extra, key=KEY):
    return check_schema("f", "f.sql:1", BASE + list(extra), key)


def test_key_and_values():
    s = schema(Column("event_type", "STRING", False), Column("n", "BIGINT", False), Column("last", "STRING", True),
               key=KEY + ("event_type",))
    assert [c.name for c in s.values] == ["n", "last"]
    assert postgres_table_ddl(s).endswith("  last text,\n  PRIMARY KEY (user_id, window_end, window_start, event_type)\n)")


def test_postgres_ddl():
    ddl = postgres_table_ddl(schema(Column("n", "BIGINT", False), Column("m", "DOUBLE", True)))
    assert ddl == (
        "CREATE TABLE IF NOT EXISTS f (\n  user_id text NOT NULL,\n  window_start timestamp(3) NOT NULL,\n"
        "  window_end timestamp(3) NOT NULL,\n  n bigint NOT NULL,\n  m double precision,\n"
        "  PRIMARY KEY (user_id, window_end, window_start)\n)"
    )


def test_parquet_sink_partitions_by_window_start_hour():
    ddl, insert = parquet_sink(schema(Column("n", "BIGINT", False)), "s3://b/p", commit_delay_minutes=120)
    assert "'path' = 's3://b/p/f'" in ddl
    assert "PARTITIONED BY (`dt`, `hr`)" in ddl
    assert "'parquet.write.int64.timestamp' = 'true'" in ddl
    assert "'sink.partition-commit.watermark-time-zone' = 'UTC'" in ddl
    assert "'sink.partition-commit.delay' = '120 min'" in ddl
    assert "DATE_FORMAT(window_start, 'yyyyMMdd'), DATE_FORMAT(window_start, 'HH')" in insert


def test_jdbc_sink_upserts_on_the_key():
    ddl, insert = jdbc_sink(schema(Column("n", "BIGINT", False)), CONFIG, "pw'd")
    assert "PRIMARY KEY (`user_id`, `window_end`, `window_start`) NOT ENFORCED" in ddl
    assert "'password' = 'pw''d'" in ddl
    assert "'sink.buffer-flush.interval' = '1000 ms'" in ddl
    assert insert == "INSERT INTO `f__rds` SELECT * FROM `f` WHERE window_end > TIMESTAMP '1970-01-01 00:00:00'"


def test_a_replay_cut_over_writes_only_later_windows():
    from datetime import datetime

    _, insert = jdbc_sink(schema(Column("n", "BIGINT", False)), CONFIG, "pw", after=datetime(2026, 12, 1, 10, 5))
    assert insert.endswith("WHERE window_end > TIMESTAMP '2026-12-01 10:05:00'")


@pytest.mark.parametrize(
    "columns, message",
    [
        (BASE[:2] + [Column("n", "BIGINT", False)], "must output window_end"),
        (BASE, "has no feature columns"),
        (BASE + [Column("dt", "STRING", True)], "reserved for partitions"),
        (BASE + [Column("m", "MAP<STRING, INT>", True)], "column m has type MAP<STRING, INT>"),
        ([BASE[0], Column("window_start", "TIMESTAMP_LTZ(3)", False), BASE[2], Column("n", "INT", True)],
         "window_start must be TIMESTAMP(3)"),
    ],
)
def test_bad_feature_schemas_name_the_file(columns, message):
    with pytest.raises(FeatureSchemaError, match="f.sql:1") as error:
        check_schema("f", "f.sql:1", columns, KEY)
    assert message in str(error.value)


def test_jdbc_sink_with_a_secret_connects_through_the_secrets_manager_driver():
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-AbCdEf"
    config = CONFIG.with_overrides({"rds": {"password": "", "password.secret.arn": arn}})
    ddl, _ = jdbc_sink(schema(Column("n", "BIGINT", False)), config, "")
    assert "'url' = 'jdbc-secretsmanager:postgresql://127.0.0.1:5433/features'" in ddl
    assert "'driver' = 'com.amazonaws.secretsmanager.sql.AWSSecretsManagerPostgreSQLDriver'" in ddl
    assert f"'username' = '{arn}'" in ddl and "'password' = ''" in ddl
