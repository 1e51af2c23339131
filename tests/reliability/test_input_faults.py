"""Bad input on the real stack, each test ending with exact final contents against the oracle:
a duplicate storm, malformed records, late events, and a database password that must never
reach a log.

As in tests/integration: events dated three hours ago, then one fresh flush event that moves the
watermark past all their windows, so PostgreSQL and the committed Parquet must hold exactly the
oracle's rows. Each test has its own stream, bucket and database.

The oracle's watermark moves with every valid record. The job's moves a little less often: Flink's
WatermarkAssignerOperator emits a watermark after a record only if it rose more than
pipeline.auto-watermark-interval (200 ms) since the last one emitted, and otherwise on a 200 ms
wall-clock timer. So at any record the job's watermark lies between that rule's and the oracle's,
and both agree on every record unless one falls into that gap. `_watermark_gap_records` checks the
test data has none, so which records are late is determined, not a matter of timing.
"""

from __future__ import annotations

import json
import random
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from jobs import feature_job
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, s3_rows, start_services, wait_for, write_config
from tests.integration.test_end_to_end import _flush_event, _produce
from tests.reliability.test_faults import _assert_exact, _wait_for_everything
from tests.sql.test_backfill_oracle import DELAY, MALFORMED, assert_matches, generate

FUTURE_SKEW = timedelta(minutes=5)  # events.future.skew.seconds in the shipped config
EMISSION_STEP = timedelta(milliseconds=200)  # Flink's default pipeline.auto-watermark-interval


def _stack(tmp_path: Path, name: str, **rds: str):
    """Config (rds keys overridden if given), services with an empty stream/bucket/database, tables."""
    config = write_config(tmp_path, name)
    if rds:
        groups = json.loads(config.read_text())
        next(g for g in groups if g["PropertyGroupId"] == "rds")["PropertyMap"].update(rds)
        config.write_text(json.dumps(groups, indent=2))
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    return config, settings


def _events(seed: int, now: datetime, **options) -> list[str]:
    lines = generate(seed=seed, events=3000, users=20, start=now - timedelta(hours=3), **options)
    return [line for line in lines if line.strip()]  # a blank line is no Kinesis record


def _watermark_gap_records(lines: list[str], arrival: datetime) -> list[str]:
    """Valid records at or behind the oracle's watermark but ahead of the one Flink's 200 ms
    emission rule would have emitted: the only records the job may classify differently."""
    gap, newest, emitted = [], None, None
    for line in lines:
        event = oracle.classify(line, arrival, FUTURE_SKEW)
        if isinstance(event, str):
            continue
        if newest is not None and event.event_time <= newest - DELAY and event.event_time > emitted:
            gap.append(line)
        newest = event.event_time if newest is None else max(newest, event.event_time)
        if emitted is None or newest - DELAY - emitted > EMISSION_STEP:
            emitted = newest - DELAY
    return gap


def _run_job(config, settings, folder: Path, produced: list[str], expected: oracle.Outcome) -> None:
    """The job as a process over the produced records until every output is committed; then stopped."""
    job = JobProcess(config, folder / "job.log").start()
    try:
        _produce(settings, produced, folder)
        _wait_for_everything(settings, expected, produced, job)
        wait_for("the quarantine and late outputs", lambda: (
            len(s3_rows(settings, "_quarantine")) >= len(expected.quarantined)
            and len(s3_rows(settings, "_late")) >= len(expected.late)
            and len(s3_rows(settings, "user_activity_1h")) >= len(oracle.user_activity_1h(expected))), job)
    finally:
        job.stop()


def _txid(payload: str) -> str:
    return json.loads(payload)["txid"]


def test_duplicate_storm_counts_each_txid_once(tmp_path):
    """30% of records re-sent: most within ~5 minutes, some 2-15 minutes later, half of those
    re-stamped with a fresh event time so that only the txid dedup (not the watermark) stops them."""
    config, settings = _stack(tmp_path, "fault-dup-storm")
    now = datetime.now(timezone.utc)
    lines = _events(43, now, duplicate_share=0.2, delayed_duplicate_share=0.12)
    expected = oracle.replay(lines, now, DELAY)
    # The storm as designed: >= 30% re-sends, of which >= 100 on time (dropped by the dedup alone).
    resends = len(lines) - len(expected.quarantined) - 3000
    assert resends >= 0.3 * 3000 and expected.duplicates >= 100, (resends, expected.duplicates)
    assert expected.duplicates + len(expected.late) == resends  # every re-send is a duplicate or late
    assert not _watermark_gap_records(lines, now)
    produced = lines + [_flush_event(now)]

    _run_job(config, settings, tmp_path, produced, expected)

    _assert_exact(settings, expected, produced)
    on_time_txids = {event.txid for event in expected.counted}
    assert len(on_time_txids) == len(expected.counted) == 3000
    for rows in (postgres_rows(settings, "user_activity_1h"), s3_rows(settings, "user_activity_1h")):
        assert sum(row["event_count"] for row in rows) == len(on_time_txids)
    # Re-sends that arrived after the watermark passed their original are late, not duplicates.
    late = s3_rows(settings, "_late")
    assert sorted(row["payload"] for row in late) == sorted(payload for payload, _ in expected.late)
    assert {_txid(row["payload"]) for row in late} <= on_time_txids


def _malformed_records(now: datetime) -> list[str]:
    """One record of each kind beyond tests/sql's MALFORMED, times relative to now."""
    def at(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    valid = {"txid": "q-0", "user_id": "u-1", "event_type": "A", "event_time": at(now - timedelta(hours=2))}

    def like(**changes) -> str:
        record = {**valid, **changes}
        return json.dumps({k: v for k, v in record.items() if v is not ...})

    return [
        "not json", '{"txid": "q-1", "user_id": "u-1"', "42", '"a string"', "null", '[{"txid": "q-2"}]',
        like(txid=...), like(txid=""), like(txid=None),
        like(user_id=...), like(user_id=""),
        like(event_type=...), like(event_type=""),
        like(event_time=...), like(event_time=None),
        like(event_time="2026-02-30T10:00:00Z"), like(event_time="2026-11-31T10:00:00.000Z"),
        like(event_time="2026-01-01 10:00:00"), like(event_time="soon"),
        like(amount="lots"), like(amount="12,5"),
        like(event_time=at(now + timedelta(hours=1))),
        like(event_time=int((now + timedelta(minutes=10)).timestamp() * 1000)),
        # Invalid, with a valid time an hour ahead of the stream: must not move the watermark.
        like(user_id=..., event_time=at(now - timedelta(hours=1))),
    ]


def test_malformed_records_are_quarantined_and_features_unaffected(tmp_path):
    config, settings = _stack(tmp_path, "fault-malformed")
    now = datetime.now(timezone.utc)
    lines = _events(47, now, duplicate_share=0.15)  # with tests/sql's MALFORMED spread through
    rng = random.Random(47)
    extra = _malformed_records(now)
    for line in extra:
        lines.insert(rng.randrange(len(lines)), line)
    bad = set(MALFORMED) | set(extra)
    clean = [line for line in lines if line not in bad]
    expected = oracle.replay(lines, now, DELAY)
    assert len(expected.quarantined) == len(lines) - len(clean) >= 0.01 * len(lines)
    assert {reason for _, reason in expected.quarantined} == {
        "not a JSON object", "missing or empty txid", "missing or empty user_id", "missing or empty event_type",
        "missing event_time", "unparseable event_time", "amount is not a number",
        "event_time more than 300 s after arrival"}
    # Unaffected: the oracle's features are the same without the malformed records.
    without = oracle.replay(clean, now, DELAY)
    assert oracle.user_activity_5m(expected) == oracle.user_activity_5m(without)
    assert oracle.user_activity_1h(expected) == oracle.user_activity_1h(without)
    assert not _watermark_gap_records(lines, now)
    produced = lines + [_flush_event(now)]

    _run_job(config, settings, tmp_path, produced, expected)

    _assert_exact(settings, expected, produced)
    rows = s3_rows(settings, "_quarantine")
    assert sorted((row["payload"], row["reason"]) for row in rows) == sorted(expected.quarantined)
    assert all(row["shard_id"] and row["sequence_number"] and row["arrival_time"] for row in rows)


def test_late_events_are_left_out_of_features_and_kept_in_the_late_output(tmp_path):
    """20 events dated 10 minutes behind the ones around them, in the second half of the stream."""
    config, settings = _stack(tmp_path, "fault-late")
    now = datetime.now(timezone.utc)
    lines = _events(53, now, duplicate_share=0.1, late=20)
    expected = oracle.replay(lines, now, DELAY)
    injected = {f"late-{n}" for n in range(20)}
    late_txids = [_txid(payload) for payload, _ in expected.late]
    assert injected <= set(late_txids) and not injected & {event.txid for event in expected.counted}
    assert not _watermark_gap_records(lines, now)
    produced = lines + [_flush_event(now)]

    _run_job(config, settings, tmp_path, produced, expected)

    _assert_exact(settings, expected, produced)
    late = s3_rows(settings, "_late")
    assert sorted(row["payload"] for row in late) == sorted(payload for payload, _ in expected.late)
    assert all(row["event_time"] <= row["missed_watermark"] for row in late)
    assert all(row["shard_id"] and row["sequence_number"] and row["arrival_time"] for row in late)
    # The watermark each one missed: the oracle's, or at most one emission step (200 ms) behind it.
    got: dict[str, list] = {}
    for row in late:
        got.setdefault(row["payload"], []).append(row["missed_watermark"])
    want: dict[str, list] = {}
    for payload, watermark in expected.late:
        want.setdefault(payload, []).append(watermark.replace(tzinfo=None))
    for payload, watermarks in want.items():
        for missed, oracle_watermark in zip(sorted(got[payload]), sorted(watermarks), strict=True):
            assert oracle_watermark - EMISSION_STEP <= missed <= oracle_watermark, (payload, missed, oracle_watermark)


def test_the_database_password_never_reaches_a_log(tmp_path):
    """A distinctive password for this test's own PostgreSQL role (`up` creates the role, or sets
    its password, from the config): the job must log in with it and print it nowhere."""
    password = "pw-" + secrets.token_hex(16)
    config, settings = _stack(tmp_path, "fault-secrets", username="fault_secrets", password=password)
    assert settings.postgres.password == password and settings.postgres.user == "fault_secrets"
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=59, events=300, users=5, duplicate_share=0.1,
                                       start=now - timedelta(hours=3)) if line.strip()]
    expected = oracle.replay(lines, now, DELAY)
    flink_logs = tmp_path / "flink-logs"
    job = JobProcess(config, tmp_path / "job.log", env={"FLINK_LOG_DIR": str(flink_logs)}).start()
    try:
        _produce(settings, lines + [_flush_event(now)], tmp_path)
        wanted = oracle.user_activity_1h(expected)
        wait_for("the windows in PostgreSQL (written with the password)",
                 lambda: len(postgres_rows(settings, "user_activity_1h")) >= len(wanted), job)
    finally:
        job.stop()
    assert_matches(postgres_rows(settings, "user_activity_1h"), wanted)

    logs = [tmp_path / "job.log", *(path for path in flink_logs.rglob("*") if path.is_file())]
    flink_text = "".join(path.read_text(errors="replace") for path in logs[1:])
    assert "user_activity_1h__rds" in flink_text, f"no Flink job log in {flink_logs}: {logs}"  # the scan sees the job
    leaked = [str(path) for path in logs if password.encode() in path.read_bytes()]
    assert not leaked, "the database password is in these logs"  # names the files, not the password
