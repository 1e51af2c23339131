"""A feature's PostgreSQL key is its GROUP BY (user, window, plus any other grouped output), not
"every text column": a STRING value such as MAX(event_type) or LAST_VALUE(event_type) is a
nullable value column, stored by both sinks and served by both reads; a group really grouped by
more than the user (GROUP BY ..., event_type) keeps that column in its key and the reads refuse it.

Two feature files are added to a copy of sql/ (as a user adds one); every value is compared with
a computation written here from the events (tests/oracle.py's replay of dedup/late/quarantine).
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg
import pytest

from jobs import feature_job
from jobs.definitions.config import load
from jobs.reads.serving import FeatureReadError, OnlineStore
from jobs.reads.training import OfflineStore, TrainingSetError
from tests import oracle
from tests.integration.stack import ROOT, postgres_rows, start_services, write_config
from tests.sql.test_backfill_oracle import DELAY, START, assert_matches, generate, read_rows

HOUR = timedelta(hours=1)
TYPES = "user_types_1h"
BY_TYPE = "user_amount_by_type_1h"
FEATURES = {
    TYPES: """-- user_types_1h: which event types each user sent per clock hour (UTC).
SELECT
  user_id,
  window_start,
  window_end,
  MAX(event_type) AS max_type,                                -- alphabetically last type
  LAST_VALUE(event_type) AS last_type,                        -- type of the last event counted
  MAX(CASE WHEN amount > 150 THEN event_type END) AS big_type, -- last type with amount > 150; NULL when none
  COUNT(*) AS event_count                                     -- events
FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY user_id, window_start, window_end
""",
    BY_TYPE: """-- user_amount_by_type_1h: each user's total amount per event type and clock hour (UTC).
SELECT
  user_id,
  window_start,
  window_end,
  event_type AS kind,                                         -- grouped: part of the key
  COALESCE(SUM(amount), 0.0) AS amount_sum                    -- total amount; 0.0 when none
FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY user_id, window_start, event_type, window_end
""",
}
USERS = [f"u-{n}" for n in range(6)] + ["u-never-seen"]


def _types(events: list[oracle.Event]) -> dict:
    big = [e.event_type for e in events if e.amount is not None and e.amount > 150]
    return {"max_type": max(e.event_type for e in events), "last_type": events[-1].event_type,
            "big_type": max(big) if big else None, "event_count": len(events)}


def _by_type(outcome: oracle.Outcome) -> dict[tuple, float]:
    sums: dict[tuple, float] = {}
    for (user, start, end), events in oracle.window_features(outcome, HOUR, HOUR).items():
        for event in events:
            key = (user, start, end, event.event_type)
            sums[key] = sums.get(key, 0.0) + (event.amount or 0.0)
    return sums


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys-types")
    sql = folder / "sql"
    shutil.copytree(ROOT / "sql", sql)
    for name, text in FEATURES.items():
        (sql / "features" / f"{name}.sql").write_text(text)
    config_path = write_config(folder, "keys-types")
    settings = start_services(config_path)
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        for table in FEATURES:  # a table keyed by an earlier version of this test would be refused
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    lines = generate(seed=17, events=400, users=6, duplicate_share=0.1, late=5)
    source = folder / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = folder / "out"
    assert feature_job.main(["migrate", "--config", str(config_path), "--sql-dir", str(sql)]) == 0
    assert feature_job.main(["backfill", "--config", str(config_path), "--sql-dir", str(sql), "--input", str(source),
                             "--output-dir", str(out), "--to-postgres",
                             "--include-partial-windows"]) == 0  # the file is the whole history
    outcome = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    expected = {key: _types(events) for key, events in oracle.window_features(outcome, HOUR, HOUR).items()}
    config = load(config_path, "serve")
    with OnlineStore(config, sql) as online:
        yield dict(settings=settings, sql=sql, out=out, outcome=outcome, expected=expected, online=online,
                   offline=OfflineStore(str(out), config, sql))


def _table_columns(settings, table: str) -> dict[str, tuple[bool, bool]]:
    """column -> (in the primary key, nullable)"""
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        key = {row[0] for row in connection.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary", (table,))}
        rows = connection.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
    return {name: (name in key, nullable == "YES") for name, nullable in rows}


def test_string_values_are_nullable_value_columns_and_the_key_is_the_group_by(run):
    assert _table_columns(run["settings"], TYPES) == {
        "user_id": (True, False), "window_start": (True, False), "window_end": (True, False),
        "max_type": (False, True), "last_type": (False, True), "big_type": (False, True), "event_count": (False, False)}
    columns = _table_columns(run["settings"], BY_TYPE)
    assert {name for name, (key, _) in columns.items() if key} == {"user_id", "window_start", "window_end", "kind"}


def test_both_sinks_hold_the_string_values(run):
    assert any(row["big_type"] is None for row in run["expected"].values())  # the NULL case is exercised
    assert_matches(postgres_rows(run["settings"], TYPES), run["expected"])
    assert_matches(read_rows(run["out"] / TYPES), run["expected"])


def test_a_group_by_another_column_keeps_several_rows_per_user(run):
    want = _by_type(run["outcome"])
    for rows in (postgres_rows(run["settings"], BY_TYPE), read_rows(run["out"] / BY_TYPE)):
        got = {(r["user_id"], r["window_start"], r["window_end"], r["kind"]): r["amount_sum"] for r in rows}
        assert got.keys() == want.keys()
        assert all(math.isclose(got[key], want[key], abs_tol=1e-9) for key in want)


def test_both_reads_serve_the_string_values(run):
    online, offline = run["online"], run["offline"]
    spec = online.specs[TYPES]
    assert spec.neutral == {"max_type": None, "last_type": None, "big_type": None, "event_count": 0}
    moments = [START.replace(tzinfo=None) + timedelta(minutes=m) for m in (-5, 30, 61, 75, 200)]
    labels = pd.DataFrame([{"user_id": user, "timestamp": moment} for moment in moments for user in USERS])
    training = offline.training_set(labels, features=[TYPES], as_complete=True).to_dict("records")
    served_values = 0
    for n, (moment, user) in enumerate((m, u) for m in moments for u in USERS):
        end, want = oracle.features_as_of(run["expected"], user, moment, HOUR, HOUR, spec.neutral)
        want = want or {column: None for column in spec.columns}
        served = online.get_features([user], as_of=moment, groups=[TYPES], as_complete=True)["users"][user][TYPES]
        offline_row = {column: training[n][f"{TYPES}.{column}"] for column in spec.columns}
        offline_row = {k: None if pd.isna(v) else v for k, v in offline_row.items()}
        assert served == offline_row == want, (user, moment, end)
        served_values += want["max_type"] is not None
    assert served_values > 5


def test_the_reads_refuse_a_group_keyed_by_more_than_the_user(run):
    with pytest.raises(FeatureReadError, match=rf"{BY_TYPE}.sql:1: feature '{BY_TYPE}' has more than one row per user "
                                               r"and window \(key columns kind\)"):
        run["online"].get_features(["u-1"], groups=[BY_TYPE])
    with pytest.raises(TrainingSetError, match=r"more than one row per user and window \(key columns kind\)"):
        run["offline"].training_set(pd.DataFrame({"user_id": ["u-1"], "timestamp": [START.replace(tzinfo=None)]}),
                                    features=[BY_TYPE])
