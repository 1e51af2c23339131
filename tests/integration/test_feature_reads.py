"""Train/serve parity on real storage: jobs.reads.serving's get_features (PostgreSQL) and jobs.reads.training's
training_set (Parquet) give the same values for the same (user, time) pairs, and both equal the
oracle's answer, including the traps: a user with no events in the current window gets neutral
values (not their last, stale row), windows not yet complete are not served, pruned history is
unknown rather than zero.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg
import pytest

from jobs import feature_job
from jobs.definitions.config import load
from jobs.reads import cli
from jobs.reads.serving import OnlineStore
from jobs.reads.training import OfflineStore
from tests import oracle
from tests.integration.stack import start_services, write_config
from tests.sql.test_backfill_oracle import DELAY, START, generate

GROUPS = {
    "user_activity_5m": (timedelta(minutes=5), timedelta(minutes=1), oracle.user_activity_5m),
    "user_activity_1h": (timedelta(hours=1), timedelta(hours=1), oracle.user_activity_1h),
}
USERS = [f"u-{n}" for n in range(60)] + ["u-never-seen"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One bounded run into both sinks (backfill --to-postgres): PostgreSQL and local Parquet."""
    folder = tmp_path_factory.mktemp("feature-reads")
    config_path = write_config(folder, "feature-reads")
    settings = start_services(config_path)
    lines = generate(seed=11, events=2500, users=60, duplicate_share=0.1, late=20)
    source = folder / "events.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = folder / "out"
    assert feature_job.main(["migrate", "--config", str(config_path)]) == 0
    assert feature_job.main(["backfill", "--config", str(config_path), "--input", str(source),
                             "--output-dir", str(out), "--to-postgres", "--include-partial-windows"]) == 0
    outcome = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    expected = {name: build(outcome) for name, (_, _, build) in GROUPS.items()}
    config = load(config_path, "serve")
    with OnlineStore(config) as online:
        yield online, OfflineStore(str(out)), expected, settings, config_path


def _moments(rng: random.Random) -> list[datetime]:
    """Before the data, inside it (random and exactly on window ends), and long after it."""
    start = START.replace(tzinfo=None)
    moments = [start + timedelta(seconds=rng.uniform(-600, 80 * 60)) for _ in range(30)]
    moments += [start + timedelta(minutes=m) for m in (3, 30, 60, 61)] + [start + timedelta(days=2)]
    return moments


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_online_and_offline_reads_agree_with_each_other_and_the_oracle(stores):
    online, offline, expected, _, _ = stores
    moments = _moments(random.Random(5))
    labels = pd.DataFrame([{"user_id": user, "timestamp": moment, "label": n % 2}
                           for n, (moment, user) in enumerate((m, u) for m in moments for u in USERS)])
    training = offline.training_set(labels, as_complete=True).to_dict("records")
    stale_traps = 0
    checked = 0
    for moment in moments:
        served = online.get_features(USERS, as_of=moment, as_complete=True)
        for user in USERS:
            offline_row = training[moments.index(moment) * len(USERS) + USERS.index(user)]
            for name, (size, slide, _) in GROUPS.items():
                spec = online.specs[name]
                end, want = oracle.features_as_of(expected[name], user, moment, size, slide, spec.neutral)
                got = served["users"][user][name]
                assert served["groups"][name]["window_end"] == end, (name, moment)
                offline_end = offline_row[f"{name}.window_end"]
                assert (None if pd.isna(offline_end) else offline_end.to_pydatetime()) == end, (name, moment)
                for column in spec.columns:
                    want_value = None if want is None else want.get(column)
                    offline_value = offline_row[f"{name}.{column}"]
                    offline_value = None if pd.isna(offline_value) else offline_value
                    assert _same(got[column], want_value), (name, user, moment, column, got[column], want_value)
                    assert _same(offline_value, want_value), (name, user, moment, column, offline_value, want_value)
                    checked += 1
                # The trap a naive "latest row" read falls into: an older window had events.
                if end is not None and want == spec.neutral and any(
                        key[0] == user and key[2] < end for key in expected[name]):
                    stale_traps += 1
    assert checked > 5000 and stale_traps > 20, (checked, stale_traps)


def test_results_say_which_window_and_how_stale(stores):
    online, _, expected, _, _ = stores
    newest_5m = max(end for _, _, end in expected["user_activity_5m"])
    as_of = newest_5m + timedelta(minutes=10, seconds=30)
    served = online.get_features(["u-1"], as_of=as_of, as_complete=True)["groups"]["user_activity_5m"]
    assert served["window_end"] == served["emitted_until"] == newest_5m
    assert served["window_start"] == newest_5m - timedelta(minutes=5)
    assert served["staleness_seconds"] == 630.0


def test_a_window_missing_rows_is_not_served_until_complete(stores):
    """The progress marker can be written before the window's last rows (sinks flush apart)."""
    _, _, expected, settings, config_path = stores
    newest = max(end for _, _, end in expected["user_activity_5m"])
    user, start, end = next(key for key in expected["user_activity_5m"] if key[2] == newest)
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        row = connection.execute("SELECT * FROM user_activity_5m WHERE user_id = %s AND window_end = %s",
                                 (user, end)).fetchone()
        connection.execute("DELETE FROM user_activity_5m WHERE user_id = %s AND window_end = %s", (user, end))
        with OnlineStore(load(config_path, "serve")) as fresh:  # nothing remembered as complete
            served = fresh.get_features([user], as_of=newest + timedelta(hours=1), as_complete=True)["groups"]["user_activity_5m"]
            assert served["window_end"] == newest - timedelta(minutes=1)
            placeholders = ", ".join(["%s"] * len(row))
            connection.execute(f"INSERT INTO user_activity_5m VALUES ({placeholders})", row)
            served = fresh.get_features([user], as_of=newest + timedelta(hours=1), as_complete=True)["groups"]["user_activity_5m"]
            assert served["window_end"] == newest


def test_cli_prints_the_feature_vector(stores, capsys):
    online, _, _, _, config_path = stores
    as_of = START + timedelta(minutes=42)
    assert cli.main(["get", "--config", str(config_path), "--user", "u-3", "--as-of", as_of.isoformat(),
                         "--as-complete"]) == 0
    printed = json.loads(capsys.readouterr().out)
    direct = online.get_features(["u-3"], as_of=as_of, as_complete=True)
    assert printed["users"]["u-3"] == direct["users"]["u-3"]
    assert printed["groups"]["user_activity_5m"]["window_end"] == "2026-01-01T00:42:00.000Z"


def test_prune_forgets_old_windows_and_reads_say_unknown(stores):
    online, _, expected, _, config_path = stores
    newest = max(end for _, _, end in expected["user_activity_5m"])
    deleted = online.prune(timedelta(minutes=30), now=newest)
    cutoff = newest - timedelta(minutes=30)
    assert deleted["user_activity_5m"] == sum(1 for _, _, end in expected["user_activity_5m"] if end < cutoff) > 0
    assert deleted["feature_progress"] > 0
    old = online.get_features(["u-1"], as_of=cutoff - timedelta(minutes=5), as_complete=True)
    assert old["groups"]["user_activity_5m"]["window_end"] is None
    assert old["users"]["u-1"]["user_activity_5m"] == {"event_count": None, "a_event_count": None, "amount_sum": None}
    recent = online.get_features(["u-1"], as_of=newest, as_complete=True)
    assert recent["groups"]["user_activity_5m"]["window_end"] == newest
    assert cli.main(["prune", "--config", str(config_path), "--days", "7", "--dry-run"]) == 0


def test_migrate_made_the_index_and_progress_table_once(stores, capsys):
    _, _, _, settings, config_path = stores
    assert feature_job.main(["migrate", "--config", str(config_path), "--dry-run"]) == 0
    assert "would run 0 statement(s)" in capsys.readouterr().out
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        indexes = {row[0] for row in connection.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"user_activity_5m_window_end_idx", "user_activity_1h_window_end_idx", "feature_progress_pkey"} <= indexes
