import pytest

from jobs.definitions.config import load
from jobs.definitions.schema import Column, check_schema
from jobs.postgres.connection import connection_kwargs
from jobs.postgres.tables import Change, ExistingColumn, MigrationError, missing, plan_migration
from tests.unit.test_sql_catalog import ROOT

SCHEMA = check_schema("f", "f.sql:1", [
    Column("user_id", "STRING", True), Column("window_start", "TIMESTAMP(3)", False),
    Column("window_end", "TIMESTAMP(3)", False), Column("n", "BIGINT", False), Column("s", "DOUBLE", True),
], ("user_id", "window_end", "window_start"))
KEY = {
    "user_id": ExistingColumn("user_id", "text", True),
    "window_start": ExistingColumn("window_start", "timestamp without time zone", True),
    "window_end": ExistingColumn("window_end", "timestamp without time zone", True),
}


def test_absent_table_is_created():
    assert plan_migration(SCHEMA, {}) == [Change("table f",
        "CREATE TABLE IF NOT EXISTS f (\n  user_id text NOT NULL,\n  window_start timestamp(3) NOT NULL,\n"
        "  window_end timestamp(3) NOT NULL,\n  n bigint NOT NULL,\n  s double precision,\n"
        "  PRIMARY KEY (user_id, window_end, window_start)\n)")]


def test_up_to_date_table_needs_nothing():
    existing = {**KEY, "n": ExistingColumn("n", "bigint", False), "s": ExistingColumn("s", "double precision", False)}
    assert plan_migration(SCHEMA, existing) == []


def test_new_feature_column_is_added():
    existing = {**KEY, "n": ExistingColumn("n", "bigint", False)}
    assert plan_migration(SCHEMA, existing) == [Change("column f.s", "ALTER TABLE f ADD COLUMN s double precision")]


def test_changed_type_is_refused_with_instructions():
    existing = {**KEY, "n": ExistingColumn("n", "integer", False), "s": ExistingColumn("s", "double precision", False)}
    with pytest.raises(MigrationError, match=r"column n: integer in PostgreSQL, bigint in the feature SQL; change it by hand"):
        plan_migration(SCHEMA, existing)


def test_changed_key_is_refused():
    existing = {**KEY, "event_type": ExistingColumn("event_type", "text", True)}
    with pytest.raises(MigrationError, match="key is"):
        plan_migration(SCHEMA, existing)


def test_connection_from_jdbc_url():
    config = load(ROOT / "deploy" / "config" / "local.json", "run").with_overrides(
        {"rds": {"jdbc.url": "jdbc:postgresql://db.internal:6543/feat?sslmode=require&foo=1"}})
    assert connection_kwargs(config, "pw") == {"host": "db.internal", "port": "6543", "dbname": "feat",
                                               "user": "features", "password": "pw", "sslmode": "require"}


def test_missing_names_each_table_once():
    changes = [Change("table a", "CREATE TABLE a"), Change("table a", "CREATE INDEX a_idx"), Change("column b.c", "ALTER")]
    assert missing(changes) == "table a, column b.c"


def test_progress_table_of_an_older_version_gets_the_emission_columns():
    from jobs.postgres.tables import _plan_progress_table

    older = {name: ExistingColumn(name, "text", name in ("feature_group", "window_end"))
             for name in ("feature_group", "window_start", "window_end", "row_count")}
    assert [change.statement for change in _plan_progress_table(older)] == [
        "ALTER TABLE feature_progress ADD COLUMN emitted_at timestamp(3)",
        "ALTER TABLE feature_progress ADD COLUMN served_from timestamp(3)"]
    assert _plan_progress_table({**older, "emitted_at": older["row_count"], "served_from": older["row_count"]}) == []
    assert _plan_progress_table({})[0].statement.startswith("CREATE TABLE IF NOT EXISTS feature_progress")
