import shutil
from pathlib import Path

import pytest

from jobs.definitions.config import load
from jobs.definitions.sql_catalog import SqlFileError, expand_like, load_catalog, render, split_statements

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load(ROOT / "deploy" / "config" / "local.json", "run")


def test_render_escapes_quotes_and_keeps_lines():
    config = CONFIG.with_overrides({"x": {"name": "it's"}})
    text = "SELECT\n'${x.name}'\n"
    assert render(text, config, Path("f.sql")) == "SELECT\n'it''s'\n"


def test_unknown_placeholder_names_file_and_line():
    with pytest.raises(SqlFileError, match=r"f.sql:3: unknown placeholder \$\{events.nope\}"):
        render("a\nb\n${events.nope}", CONFIG, Path("f.sql"))


def test_split_ignores_semicolons_in_quotes_and_comments():
    text = "-- header; still a comment\nCREATE TABLE a (x STRING) WITH ('p' = 'a;b');\n\n/* ; */ INSERT INTO a SELECT ';'"
    statements = split_statements(text, Path("f.sql"))
    assert [s.first_line for s in statements] == [1, 4]
    assert statements[0].text.endswith("'a;b')")
    assert statements[1].text.endswith("SELECT ';'")


def test_unterminated_quote_is_reported():
    with pytest.raises(SqlFileError, match="f.sql:2: unterminated ' quote"):
        split_statements("SELECT 1;\nSELECT 'x", Path("f.sql"))


def test_expand_like_keeps_line_numbers():
    base = split_statements("CREATE TABLE events_raw (\n  payload STRING -- raw\n) WITH ('connector' = 'x')", Path("b.sql"))[0]
    derived = split_statements("CREATE TABLE events (\n  n AS 1\n) LIKE events_raw", Path("e.sql"))[0]
    expanded = expand_like(derived, base)
    assert expanded.text == "CREATE TABLE events ( payload STRING,\n  n AS 1\n) WITH ('connector' = 'x')"
    assert expanded.text.count("\n") == derived.text.count("\n")


def test_shipped_catalog_discovery():
    catalog = load_catalog(ROOT / "sql", "kinesis", CONFIG)
    assert [f.name for f in catalog.features] == ["user_activity_1h", "user_activity_5m"]
    assert catalog.tables[0].path.name == "events_raw.sql"
    assert "'connector' = 'kinesis'" in catalog.tables[1].text  # events inherits the connector
    assert any("INSERT INTO quarantine" in s.text for s in catalog.sinks)


def copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", target)
    return target


def test_feature_file_must_hold_one_select(tmp_path):
    sql = copy_sql(tmp_path)
    (sql / "features" / "bad.sql").write_text("-- two\nSELECT 1;\nSELECT 2\n")
    with pytest.raises(SqlFileError, match=r"bad.sql:3: a feature file holds exactly one statement"):
        load_catalog(sql, "kinesis", CONFIG)


def test_feature_names_must_be_snake_case(tmp_path):
    sql = copy_sql(tmp_path)
    (sql / "features" / "Bad-Name.sql").write_text("SELECT 1")
    with pytest.raises(SqlFileError, match="lower_snake_case"):
        load_catalog(sql, "kinesis", CONFIG)


def test_views_are_ordered_by_dependency(tmp_path):
    sql = copy_sql(tmp_path)
    (sql / "views" / "a_recent.sql").write_text("CREATE TEMPORARY VIEW a_recent AS SELECT * FROM events_deduped")
    catalog = load_catalog(sql, "kinesis", CONFIG)
    names = [s.path.stem for s in catalog.views]
    assert names.index("events_deduped") < names.index("a_recent")


def test_unknown_connector_is_reported():
    with pytest.raises(SqlFileError, match="no source definition for connector 'kafka'"):
        load_catalog(ROOT / "sql", "kafka", CONFIG)
