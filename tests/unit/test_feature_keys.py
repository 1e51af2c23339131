"""A feature's key, read from its SQL text: user_id, window_end, window_start plus every other
GROUP BY expression the SELECT outputs (named by its output name). Value columns are the rest,
whatever their type."""

from pathlib import Path

import pytest

from jobs.definitions.config import load
from jobs.definitions.feature_specs import key_of, load_specs, spec_of
from jobs.definitions.schema import Column, FeatureSchemaError, check_schema
from jobs.definitions.sql_catalog import Feature, SqlFileError, Statement
from jobs.postgres.tables import postgres_table_ddl

ROOT = Path(__file__).resolve().parents[2]
WINDOW = "FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))"
BASE = ("user_id", "window_end", "window_start")


def _key(select: str, group_by: str = "user_id, window_start, window_end", tail: str = "") -> tuple[str, ...]:
    return key_of(Statement(Path("f.sql"), 3, f"SELECT user_id, window_start, window_end, {select}\n{WINDOW}\n"
                                               f"GROUP BY {group_by}{tail}"))


def test_shipped_features_are_keyed_by_user_and_window():
    specs = load_specs(ROOT / "sql", load(ROOT / "deploy" / "config" / "local.json", "serve"))
    assert {name: spec.key for name, spec in specs.items()} == {"user_activity_1h": BASE, "user_activity_5m": BASE}


@pytest.mark.parametrize("select", [
    "MAX(event_type) AS last_type",
    "LAST_VALUE(event_type) AS last_type, COUNT(*) AS n",
    "CAST(MAX(event_type) AS STRING) last_type",                 # alias without AS
    "MAX(CASE WHEN amount > 1 THEN event_type END) AS big_type",
    "CONCAT(MIN(event_type), '-', MAX(event_type)) AS span",
])
def test_a_string_value_is_not_part_of_the_key(select):
    assert _key(select) == BASE


@pytest.mark.parametrize("select, group_by, key", [
    ("event_type, COUNT(*) AS n", "user_id, window_start, window_end, event_type", ("event_type",)),
    ("event_type AS kind, COUNT(*) AS n", "user_id, window_start, window_end, event_type", ("kind",)),
    ("`event_type` AS `kind`, COUNT(*) AS n", "`user_id`, window_start, window_end, event_type", ("kind",)),
    ("e.event_type AS kind, COUNT(*) AS n", "e.user_id, e.window_start, e.window_end, event_type", ("kind",)),
    ("UPPER(event_type) AS kind, COUNT(*) AS n", "user_id, window_start, window_end, upper( event_type )", ("kind",)),
    ("amount > 100 AS big, SUBSTRING(event_type, 1, 1) AS t, COUNT(*) AS n",
     "SUBSTRING(event_type,1,1), user_id, window_start, window_end, amount > 100", ("big", "t")),
    ("event_type, COUNT(*) AS n", "user_id, window_start, event_type, window_end", ("event_type",)),
])
def test_every_other_grouped_output_joins_the_key(select, group_by, key):
    assert _key(select, group_by) == BASE + key


def test_the_clause_ends_at_having_order_and_limit_and_ignores_comments_and_subqueries():
    text = ("SELECT user_id, window_start, window_end, kind, COUNT(*) AS n -- GROUP BY nothing, here\n"
            "FROM (SELECT *, event_type AS kind FROM x GROUP BY a, b) t\n"
            "GROUP BY user_id, window_start, window_end, kind /* , amount */\n"
            "HAVING COUNT(*) > 1 ORDER BY n LIMIT 5")
    assert key_of(Statement(Path("f.sql"), 1, text)) == BASE + ("kind",)


@pytest.mark.parametrize("select, group_by, message", [
    ("COUNT(*) AS n", "user_id, window_start, window_end, event_type",
     "groups by event_type, which its SELECT does not output"),
    ("MAX(event_type) AS kind", "user_id, window_start, window_end, UPPER(event_type)",
     r"groups by UPPER\(event_type\), which its SELECT does not output"),
])
def test_a_grouped_expression_not_output_is_refused(select, group_by, message):
    with pytest.raises(SqlFileError, match=rf"^f\.sql:3: .*{message}"):
        _key(select, group_by)


def test_a_feature_without_an_outermost_group_by_is_refused():
    text = f"SELECT * FROM (SELECT user_id, window_start, window_end, COUNT(*) AS n {WINDOW} GROUP BY 1)"
    with pytest.raises(SqlFileError, match=r"^f\.sql:3: .*GROUP BY"):
        key_of(Statement(Path("f.sql"), 3, text))


def test_the_spec_separates_key_and_values():
    spec = spec_of(Feature("f", Statement(Path("f.sql"), 1,
        f"SELECT user_id, window_start, window_end, event_type AS kind, MAX(event_type) AS last_type, COUNT(*) AS n\n"
        f"{WINDOW}\nGROUP BY user_id, window_start, window_end, event_type")))
    assert spec.key == BASE + ("kind",)
    assert spec.extra_key == ("kind",)
    assert spec.neutral == {"last_type": None, "n": 0}


STRING_VALUE = [Column("user_id", "STRING", True), Column("window_start", "TIMESTAMP(3)", False),
                Column("window_end", "TIMESTAMP(3)", False), Column("last_type", "STRING", True)]


def test_a_string_value_column_is_nullable_in_postgres():
    schema = check_schema("f", "f.sql:1", STRING_VALUE, BASE)
    assert [c.name for c in schema.values] == ["last_type"]
    assert postgres_table_ddl(schema) == (
        "CREATE TABLE IF NOT EXISTS f (\n  user_id text NOT NULL,\n  window_start timestamp(3) NOT NULL,\n"
        "  window_end timestamp(3) NOT NULL,\n  last_type text,\n  PRIMARY KEY (user_id, window_end, window_start)\n)")


def test_a_key_naming_no_output_column_is_refused():
    with pytest.raises(FeatureSchemaError, match=r"f\.sql:1: feature 'f' key column kind is not among its output"):
        check_schema("f", "f.sql:1", STRING_VALUE, BASE + ("kind",))
