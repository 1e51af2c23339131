"""deploy/athena/ is the DDL the generator derives from the feature SQL (through Flink's planner,
like `migrate`) for deploy/config/aws.example.json."""

from pathlib import Path

import pytest

from deploy.managed_flink import athena, settings
from deploy.managed_flink.athena import AthenaError
from jobs.definitions.schema import Column, check_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "aws.example.json"
ATHENA_DIR = ROOT / "deploy" / "athena"


@pytest.fixture(scope="module")
def generated():
    conf = settings.load(EXAMPLE)
    return athena.render_all(conf, athena.feature_schemas(conf, ROOT / "sql"))


def test_one_file_per_feature_plus_the_database(generated):
    features = sorted(p.stem for p in (ROOT / "sql" / "features").glob("*.sql"))
    assert sorted(generated) == sorted([athena.DATABASE_FILE, *(f"{name}.sql" for name in features)])
    assert sorted(p.name for p in ATHENA_DIR.glob("*.sql")) == sorted(generated)


def test_checked_in_ddl_equals_the_generated_one(generated):
    for name, text in generated.items():
        assert (ATHENA_DIR / name).read_text() == text, (
            f"deploy/athena/{name} is stale: python -m deploy.managed_flink athena "
            "--config deploy/config/aws.example.json --out-dir deploy/athena")


def test_ddl_shape(generated):
    ddl = generated["user_activity_5m.sql"]
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `feature_store`.`user_activity_5m` (\n  `user_id` string,\n" in ddl
    assert "  `window_start` timestamp,\n  `window_end` timestamp,\n  `event_count` bigint," in ddl
    assert "PARTITIONED BY (`dt` string, `hr` string)\nSTORED AS PARQUET\n" in ddl
    assert "LOCATION 's3://example-feature-store/features/user_activity_5m/'" in ddl
    assert "'projection.dt.format' = 'yyyyMMdd'" in ddl and "'projection.hr.digits' = '2'" in ddl
    assert ("'storage.location.template' = 's3://example-feature-store/features/user_activity_5m/dt=${dt}/hr=${hr}/'"
            in ddl)
    assert str(ROOT) not in ddl  # no machine paths in a checked-in file


def test_types():
    schema = check_schema("f", "f.sql:1", [
        Column("user_id", "STRING", True), Column("window_start", "TIMESTAMP(3)", False),
        Column("window_end", "TIMESTAMP(3)", False), Column("n", "INT", False), Column("d", "DECIMAL(10, 2)", True),
        Column("b", "BOOLEAN", True), Column("day", "DATE", True)],
        ("user_id", "window_end", "window_start"))
    assert [athena.athena_type(c) for c in schema.columns] == [
        "string", "timestamp", "timestamp", "int", "decimal(10,2)", "boolean", "date"]
    with pytest.raises(AthenaError, match="column x: no Athena type for ARRAY<INT>"):
        athena.athena_type(Column("x", "ARRAY<INT>", True))
