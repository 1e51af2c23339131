"""Fresh reads live through Kinesis: "the window ending now", online and offline, against an oracle.

Events dated over the last minutes (re-sends, disorder, malformed lines) reach the real job in
three batches: a crash and restart after the first, and the third late events and re-sends of
the first (which must change nothing) before one on-time event. After each batch has been
processed, get_features(fresh=True) must give every user exactly the oracle's values over the
span it covers (the open slice plus the complete ones before it); training_set(fresh=True) at
those moments must give the same values from the Parquet changelog. A group whose aggregates
slices cannot combine (COUNT DISTINCT) is refused for fresh reads, naming file and column, and its
window reads still work. The interval is 2 s here (default 5).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from jobs import feature_job
from jobs.definitions.config import load
from jobs.reads.point_in_time import EPOCH
from jobs.reads.serving import FeatureReadError, OnlineStore
from jobs.reads.training import OfflineStore, TrainingSetError
from tests import oracle
from tests.integration.stack import JobProcess, same_value, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _produce
from tests.sql.test_backfill_oracle import DELAY, ROOT, generate

STREAM = "fresh-reads"
# A TUMBLE group with every combinable aggregate (the shipped 5-minute group covers HOP).
TUMBLE_FEATURE = """-- user_amounts_10m: amounts per user and 10 minutes (every aggregate slices can combine).
SELECT user_id, window_start, window_end,
  COUNT(amount) AS amount_count,                                  -- events with an amount
  MIN(amount) AS amount_min,                                      -- smallest amount; NULL when none
  MAX(amount) AS amount_max,                                      -- largest amount; NULL when none
  AVG(amount) AS amount_avg,                                      -- mean amount; NULL when none
  COALESCE(SUM(amount) FILTER (WHERE event_type = 'A'), 0.0) AS a_amount_sum  -- amounts of A events
FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
GROUP BY user_id, window_start, window_end
"""
GROUPS = {"user_activity_5m": (timedelta(minutes=5), timedelta(minutes=1)),
          "user_amounts_10m": (timedelta(minutes=10), timedelta(minutes=10))}
USERS = [f"u-{n}" for n in range(12)] + ["u-never-seen"]


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - EPOCH) % step


def _oracle(outcome: oracle.Outcome, name: str, user: str, as_of: datetime) -> dict:
    """The group's values over the events counted so far whose slice is in the span at ``as_of``."""
    size, slide = GROUPS[name]
    last = _floor(as_of, slide)
    events = [e for e in outcome.counted if e.user_id == user
              and last - size + slide <= _floor(e.event_time.replace(tzinfo=None), slide) <= last]
    amounts = [e.amount for e in events if e.amount is not None]
    if name == "user_activity_5m":
        return {"event_count": len(events), "a_event_count": sum(e.event_type == "A" for e in events),
                "amount_sum": sum(amounts) if amounts else 0.0}
    a_amounts = [e.amount for e in events if e.amount is not None and e.event_type == "A"]
    return {"amount_count": len(amounts), "amount_min": min(amounts, default=None),
            "amount_max": max(amounts, default=None), "amount_avg": sum(amounts) / len(amounts) if amounts else None,
            "a_amount_sum": sum(a_amounts) if a_amounts else 0.0}


def _differences(got: dict, want: dict) -> list:
    return [(column, got.get(column), value) for column, value in want.items() if not same_value(got.get(column), value)]


def _read_when_caught_up(store: OnlineStore, outcome: oracle.Outcome, job: JobProcess) -> dict:
    """A fresh read once the job has counted everything produced so far (each user as the oracle)."""
    result = {}

    def matches() -> bool:
        result.update(store.get_features(USERS, groups=list(GROUPS), fresh=True))
        return all(not _differences(result["users"][user][name], _oracle(outcome, name, user, result["as_of"]))
                   for user in USERS for name in GROUPS)

    try:
        wait_for("fresh reads equal to the oracle", matches, job, timeout=90)
    except AssertionError as timeout:
        wrong = {(user, name): _differences(result["users"][user][name], _oracle(outcome, name, user, result["as_of"]))
                 for user in USERS for name in GROUPS}
        raise AssertionError(f"as of {result['as_of']}: {({k: v for k, v in wrong.items() if v})}") from timeout
    return result


def _none(value):
    return None if pd.isna(value) else value


def _offline_matches_online(offline: OfflineStore, reads: list[dict]) -> list:
    labels = pd.DataFrame([{"user_id": user, "timestamp": read["as_of"]} for read in reads for user in USERS])
    rows = iter(offline.training_set(labels, list(GROUPS), fresh=True).to_dict("records"))
    differences = []
    for read in reads:
        for user in USERS:
            row = next(rows)
            for name in GROUPS:
                for column, value in read["users"][user][name].items():
                    if not same_value(_none(row[f"{name}.{column}"]), value):
                        differences.append((read["as_of"], user, f"{name}.{column}", row[f"{name}.{column}"], value))
    return differences


def _late_and_resent(first: list[str], now: datetime) -> list[str]:
    """Events behind the watermark (dated 10 minutes ago) and identical re-sends of early events,
    sent once the job's watermark has surely moved past them (within a batch read at once it has
    not moved yet), then one on-time event."""
    late = [json.dumps({"txid": f"late-{n}", "user_id": f"u-{n}", "event_type": "A", "amount": 1.0,
                        "event_time": f"{now - timedelta(minutes=10, seconds=n):%Y-%m-%dT%H:%M:%S.000Z}"})
            for n in range(5)]
    resent = [line for line in first if line.startswith('{"txid": "t-')][:10]
    last = json.dumps({"txid": "on-time-last", "user_id": "u-0", "event_type": "B", "amount": 2.5,
                       "event_time": f"{now:%Y-%m-%dT%H:%M:%S.000Z}"})  # counted: the batch was read when it is
    return late + resent + [last]


def test_fresh_reads_equal_the_oracle_online_and_offline(tmp_path):
    config = write_config(tmp_path, STREAM, extra={"features": {"fresh.interval.seconds": "2"}})
    settings = start_services(config)
    sql_dir = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql_dir)
    (sql_dir / "features" / "user_amounts_10m.sql").write_text(TUMBLE_FEATURE)
    assert feature_job.main(["migrate", "--config", str(config), "--sql-dir", str(sql_dir)]) == 0
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=71, events=900, users=12, duplicate_share=0.1,
                                       start=now - timedelta(minutes=7), span=timedelta(minutes=7)) if line.strip()]
    batches = [lines[:len(lines) * 2 // 3], lines[len(lines) * 2 // 3:], _late_and_resent(lines, now)]
    store = OnlineStore(load(config, "serve"), sql_dir)
    offline = OfflineStore(f"s3://{settings.bucket}/{settings.prefix}", load(config, "train"), sql_dir)
    args = ("--sql-dir", str(sql_dir))
    job = JobProcess(config, tmp_path / "job.log", args).start()
    reads: list[dict] = []
    try:
        for number, batch in enumerate(batches):
            if number == 1:
                job.crash()  # the versions since the last checkpoint are written again after the restart
                job = JobProcess(config, tmp_path / "job.log", args).start()
            _produce(settings, batch, tmp_path)
            produced = [line for sent in batches[:number + 1] for line in sent]
            reads.append(_read_when_caught_up(store, oracle.replay(produced, now, DELAY), job))
            wait_for("the changelog in S3 to hold what was served", lambda: not _offline_matches_online(offline, reads),
                     job, timeout=60)
    finally:
        job.stop()

    outcome = oracle.replay([line for batch in batches for line in batch], now, DELAY)
    assert len(outcome.late) >= 5 and outcome.duplicates + len(outcome.late) >= 15  # what the last batch was for
    window_read = store.get_features(["u-1"], groups=["user_activity_1h"])  # not refused: only fresh reads are
    assert set(window_read["users"]["u-1"]["user_activity_1h"]) >= {"event_count", "distinct_event_types"}
    with pytest.raises(FeatureReadError, match=r"user_activity_1h\.sql:\d+: .*column distinct_event_types"):
        store.get_features(["u-1"], groups=["user_activity_1h"], fresh=True)
    with pytest.raises(TrainingSetError, match=r"COUNT\(DISTINCT event_type\)"):
        offline.training_set(pd.DataFrame([{"user_id": "u-1", "timestamp": now}]), ["user_activity_1h"], fresh=True)
    store.close()
