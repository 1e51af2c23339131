"""A feature change shipped to a running job: nothing lost, nothing doubled (real servers, oracle).

v1 (the shipped features) runs while events flow (re-sends, disorder, late arrivals) and is stopped
with 5-minute and 1-hour windows open. Then a feature file is added (user_activity_10m) and one
column of user_activity_5m is edited; `run` on the same checkpoint folder notices the changed
operators and replays. More events follow, starting with re-sends of txids v1 saw before the stop.
In the end every window of every group, in PostgreSQL and in Parquet, is the oracle's: the edited
group by its old logic up to its cut-over and its new logic after (the same cut in both sinks, so
training and serving agree), the new group from its cut-over (its fresh slices too); Parquet holds
each window once.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.fs as pafs

from jobs import feature_job
from jobs.definitions.config import load
from jobs.definitions.replay import Cut
from jobs.operations.upgrade import read_state
from tests import oracle
from tests.integration.stack import (JobProcess, assert_reads_match, postgres_rows, s3_rows, start_services, wait_for,
                                     write_config)
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.sql.test_backfill_oracle import DELAY, ROOT, assert_matches, generate

STREAM = "upgrade-events"
NEW_FEATURE = """-- user_activity_10m: events per user and 10 minutes (added while the job runs).
SELECT user_id, window_start, window_end,
  COUNT(*) AS event_count,                      -- events (each txid once)
  MAX(amount) AS amount_max                     -- largest amount; NULL when none
FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
GROUP BY user_id, window_start, window_end
"""
OLD_A, NEW_A = "COUNT(*) FILTER (WHERE event_type = 'A')", "COUNT(*) FILTER (WHERE event_type IN ('A', 'B'))"


def _s3(settings) -> pafs.S3FileSystem:
    endpoint = settings.s3_endpoint
    return pafs.S3FileSystem(access_key="test", secret_key="test", region=settings.region,
                             endpoint_override=endpoint.split("://", 1)[-1], scheme=endpoint.split("://", 1)[0])


def _sql_v2(sql_v1: Path, folder: Path) -> Path:
    sql = folder / "sql-v2"
    shutil.copytree(sql_v1, sql)
    (sql / "features" / "user_activity_10m.sql").write_text(NEW_FEATURE)
    edited = sql / "features" / "user_activity_5m.sql"
    assert OLD_A in edited.read_text()
    edited.write_text(edited.read_text().replace(OLD_A, NEW_A))
    return sql


def _expected(outcome: oracle.Outcome, cut) -> dict[str, dict[tuple, dict]]:
    """Every group's rows as the upgrade must leave them in both sinks."""
    minute = timedelta(minutes=1)
    old_5m = oracle.user_activity_5m(outcome)
    types = {key: [e.event_type for e in events] for key, events in oracle.window_features(outcome, 5 * minute, minute).items()}
    new_5m = {key: {**values, "a_event_count": sum(t in ("A", "B") for t in types[key])} for key, values in old_5m.items()}
    ten = {key: {"event_count": len(events),
                 "amount_max": max((e.amount for e in events if e.amount is not None), default=None)}
           for key, events in oracle.window_features(outcome, 10 * minute, 10 * minute).items()}
    until_5m, until_10m = cut.writes_after("user_activity_5m"), cut.writes_after("user_activity_10m")
    return {
        "user_activity_1h": oracle.user_activity_1h(outcome),
        "user_activity_5m": {key: (old_5m if key[2] <= until_5m else new_5m)[key] for key in old_5m},
        "user_activity_10m": {key: values for key, values in ten.items() if key[2] > until_10m},
    }


def _missing(settings, expected: dict[str, dict[tuple, dict]]) -> dict[str, dict[str, list]]:
    """Per group and sink, the expected windows (user, start, end) not written yet (a few of each)."""
    missing = {}
    for name, rows in expected.items():
        for sink, stored in (("postgres", postgres_rows(settings, name)), ("s3", s3_rows(settings, name))):
            keys = {(row["user_id"], row["window_start"], row["window_end"]) for row in stored}
            absent = sorted(set(rows) - keys)
            if absent:
                missing[f"{name} in {sink}"] = [len(absent), *absent[:3]]
    return missing


def _newest_fresh(settings, name: str, expected: dict[str, dict[tuple, dict]]) -> bool:
    """Whether the newest version of each of the group's fresh slices counts its window's events,
    and no slice is older than the group's expected windows (none before its cut-over)."""
    newest: dict[tuple, dict] = {}
    for row in postgres_rows(settings, f"{name}__fresh"):
        key = (row["user_id"], row["window_start"], row["window_end"])
        if key not in newest or row["version"] > newest[key]["version"]:
            newest[key] = row
    windows = expected[name]
    first_end = min(end for _, _, end in windows)
    return (all(end >= first_end for _, _, end in newest)
            and all(key in newest and newest[key]["event_count"] == values["event_count"] for key, values in windows.items()))


def test_a_feature_added_and_one_edited_while_the_job_runs(tmp_path):
    config = write_config(tmp_path, STREAM)
    settings = start_services(config)
    sql_v1 = tmp_path / "sql-v1"
    shutil.copytree(ROOT / "sql", sql_v1)
    assert feature_job.main(["migrate", "--config", str(config), "--sql-dir", str(sql_v1)]) == 0
    now = datetime.now(timezone.utc)
    base = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lines = [line for line in generate(seed=53, events=3000, users=15, duplicate_share=0.1, late=6,
                                       start=base - timedelta(minutes=20), delayed_duplicate_share=0.05) if line.strip()]
    # v1 sees events dated up to 35 minutes into the hour starting at `base`: the hour before is
    # closed, that hour and the 5-minute windows since ~34 minutes are open when it stops.
    cut_at = next(i for i, line in enumerate(lines) if line.startswith('{"txid": "t-')
                  and oracle.parse_time(json.loads(line)["event_time"]) >= base + timedelta(minutes=35))
    first, second = lines[:cut_at], lines[cut_at:]
    resends = [line for line in first[-40:] if line.startswith('{"txid": "t-')][:10]  # seen by v1, within the delay
    produced = first + resends + second + [_flush_event(now)]

    _produce(settings, first, tmp_path)
    v1 = JobProcess(config, tmp_path / "v1.log", ("--sql-dir", str(sql_v1))).start()
    try:
        wait_for("v1's windows up to its watermark", lambda: len(postgres_rows(settings, "feature_progress")) >= 40, v1)
        wait_for("v1's markers in S3", lambda: len(s3_rows(settings, "_progress/user_activity_5m")) >= 40, v1)
    finally:
        v1.stop()

    sql_v2 = _sql_v2(sql_v1, tmp_path)
    assert feature_job.main(["migrate", "--config", str(config), "--sql-dir", str(sql_v2)]) == 0
    v2 = JobProcess(config, tmp_path / "v2.log", ("--sql-dir", str(sql_v2))).start()
    try:
        _produce(settings, resends + second + [_flush_event(now)], tmp_path)
        outcome = oracle.replay(produced[:-1], now, DELAY)  # the flush event's own windows stay open
        wait_for("v2 to choose", lambda: "upgrade:" in v2.log.read_text(), v2, timeout=120)
        cut = read_state(load(config, "run")).cut
        expected = _expected(outcome, cut)
        try:
            wait_for("every window in both sinks", lambda: not _missing(settings, expected), v2, timeout=300)
        except AssertionError as timeout:
            raise AssertionError(f"windows missing: {_missing(settings, expected)}") from timeout
        # The new group's fresh slices (a TUMBLE: one slice per window) start at its cut-over too.
        wait_for("the new group's fresh slices", lambda: _newest_fresh(settings, "user_activity_10m", expected), v2,
                 timeout=60)
    finally:
        v2.stop()
    log = (tmp_path / "v2.log").read_text()
    assert "added user_activity_10m" in log and "edited user_activity_5m" in log
    assert cut.start <= base.replace(tzinfo=None) - timedelta(minutes=5)  # the open hour's start, minus the future skew
    for name, rows in expected.items():
        assert_matches(postgres_rows(settings, name), rows)
        assert_matches(s3_rows(settings, name), rows)  # also fails on a window twice

    # The new group's history, from the raw archive (which holds v1's records twice: v2 archived
    # what it replayed), written up to its cut-over into the same PostgreSQL table and S3 folder.
    raw = tmp_path / "raw"
    pafs.copy_files(f"{settings.bucket}/{settings.prefix}/_raw", str(raw), source_filesystem=_s3(settings),
                    destination_filesystem=pafs.LocalFileSystem())
    until = cut.writes_after("user_activity_10m")
    assert feature_job.main(["backfill", "--config", str(config), "--sql-dir", str(sql_v2), "--input", str(raw),
                             "--feature", "user_activity_10m", "--until", f"{until:%Y-%m-%dT%H:%M:%SZ}",
                             "--include-partial-windows",  # the archive is the stream's whole history
                             "--output-dir", f"s3://{settings.bucket}/{settings.prefix}", "--to-postgres"]) == 0
    everything = _expected(outcome, Cut("", None, {}))["user_activity_10m"]
    assert_matches(postgres_rows(settings, "user_activity_10m"), everything)
    assert_matches(s3_rows(settings, "user_activity_10m"), everything)
    # Online and offline reads across the cut-over serve whole windows only: the stored rows'.
    stored = {**expected, "user_activity_10m": everything}
    users = sorted({user for user, _, _ in stored["user_activity_5m"]})
    moments = [base.replace(tzinfo=None) + timedelta(minutes=m, seconds=23) for m in range(-15, 60, 4)]
    assert_reads_match(config, stored, users, moments, sql_v2)
