"""The real SQL over generated events, every feature value compared with tests/oracle.py.

One JVM serves the whole module: each backfill builds a fresh TableEnvironment on it.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from jobs import feature_job
from tests import oracle

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
START = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
DELAY = timedelta(seconds=30)

MALFORMED = [
    "not json at all",
    "[1, 2, 3]",
    "",
    '{"user_id": "u-1", "event_type": "A", "event_time": "2026-01-01T00:10:00Z"}',
    '{"txid": "m-1", "user_id": "", "event_type": "A", "event_time": "2026-01-01T00:10:00Z"}',
    '{"txid": "m-2", "user_id": "u-1", "event_time": "2026-01-01T00:10:00Z"}',
    '{"txid": "m-3", "user_id": "u-1", "event_type": "A"}',
    '{"txid": "m-4", "user_id": "u-1", "event_type": "A", "event_time": "2026-02-30T00:10:00Z"}',
    '{"txid": "m-5", "user_id": "u-1", "event_type": "A", "event_time": "yesterday"}',
    '{"txid": "m-6", "user_id": "u-1", "event_type": "A", "event_time": "2026-01-01 00:10:00"}',
    '{"txid": "m-7", "user_id": "u-1", "event_type": "A", "event_time": "2026-01-01T00:10:00Z", "amount": "lots"}',
    '{"txid": "m-8", "user_id": "u-1", "event_type": "A", "event_time": "2099-01-01T00:00:00Z"}',
    # Digits and a line break: a pattern's $ would accept it and the cast to BIGINT then fail the job.
    '{"txid": "m-10", "user_id": "u-1", "event_type": "A", "event_time": "1767225605123\\n"}',
    # A bad record with a valid time 45 minutes ahead: it must not move the watermark.
    '{"txid": "m-9", "event_type": "A", "event_time": "2026-01-01T01:30:00Z"}',
]


def _time_text(moment: datetime, rng: random.Random) -> object:
    style = rng.randrange(4)
    if style == 0:
        return int(moment.timestamp() * 1000)
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if style == 2:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # whole seconds only
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # microseconds: truncated to millis


def generate(seed: int, events: int, users: int, duplicate_share: float, late: int = 0,
             start: datetime = START, delayed_duplicate_share: float = 0.0,
             span: timedelta = timedelta(minutes=70)) -> list[str]:
    """Events over ``span``, out of order within 20 s (< the 30 s bound), with identical
    re-sends a little later, malformed lines spread through, and optionally some late arrivals.

    ``delayed_duplicate_share``: that share of events is re-sent once more, 2-15 minutes later in
    arrival order (far within the dedup TTL). Half of these re-sends are identical (the watermark
    has passed the original by then: late); the other half carry the time of the moment they are
    re-sent, as a producer that rebuilds a record on retry would, so they are on time and only the
    txid dedup stops them. 0 (the default) leaves the output exactly as before.
    """
    rng = random.Random(seed)
    records = []
    for n in range(events):
        moment = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000 + rng.randrange(1000))
        record = {"txid": f"t-{n}", "user_id": f"u-{rng.randrange(users)}", "event_type": rng.choice("AABCD"),
                  "event_time": _time_text(moment, rng)}
        amount_style = rng.random()
        if amount_style < 0.6:
            record["amount"] = round(rng.uniform(0, 200), 2)
        elif amount_style < 0.7:
            record["amount"] = None
        elif amount_style < 0.75:
            record["amount"] = rng.randrange(50)  # an integer is a number too
        # Arrival order: event time plus up to 20 s of delivery jitter.
        records.append((moment + timedelta(seconds=rng.uniform(0, 20)), json.dumps(record)))
    records.sort()
    lines = [line for _, line in records]
    for _ in range(int(events * duplicate_share)):
        original = rng.randrange(len(lines))
        lines.insert(min(len(lines), original + rng.randrange(1, 300)), lines[original])
    for bad in MALFORMED:
        lines.insert(rng.randrange(len(lines)), bad)
    normal = [i for i, line in enumerate(lines) if line.startswith('{"txid": "t-')]
    for n, position in enumerate(sorted(rng.sample(normal[len(normal) // 2:], late), reverse=True)):
        # Dated 10 minutes before the event it precedes: behind the watermark when it arrives.
        late_time = oracle.parse_time(json.loads(lines[position])["event_time"]) - timedelta(minutes=10)
        lines.insert(position, json.dumps({"txid": f"late-{n}", "user_id": f"u-{n % users}", "event_type": "A",
                                           "event_time": int(late_time.timestamp() * 1000), "amount": 1.0}))
    if delayed_duplicate_share:
        _add_delayed_resends(lines, rng, int(events * delayed_duplicate_share))
    return lines


def _add_delayed_resends(lines: list[str], rng: random.Random, count: int) -> None:
    """Re-send ``count`` events 2-15 minutes (of event time) after their first delivery; every
    second one re-stamped with the event time of where it is inserted (see generate())."""
    times = [oracle.parse_time(json.loads(line)["event_time"]) if line.startswith('{"txid": "t-') else None
             for line in lines]
    normal = [i for i, moment in enumerate(times) if moment is not None]
    inserts = []
    for n in range(count):
        original = rng.choice(normal)
        target = times[original] + timedelta(minutes=rng.uniform(2, 15))
        position = next((i for i in normal if i > original and times[i] >= target), None)
        if position is None:
            continue  # the original is too close to the end of the data
        record = json.loads(lines[original])
        if n % 2:
            record["event_time"] = target.strftime("%Y-%m-%dT%H:%M:%S.") + f"{target.microsecond // 1000:03d}Z"
        inserts.append((position, json.dumps(record)))
    for position, line in sorted(inserts, key=lambda insert: insert[0], reverse=True):
        lines.insert(position, line)


def run_backfill(tmp_path: Path, lines: list[str], sql_dir: Path | None = None) -> Path:
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    # The file is the whole history: its first and last windows are complete too.
    args = ["backfill", "--config", str(CONFIG), "--input", str(source), "--output-dir", str(out), "--include-partial-windows"]
    if sql_dir:
        args += ["--sql-dir", str(sql_dir)]
    assert feature_job.main(args) == 0
    return out


def read_rows(path: Path) -> list[dict]:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def assert_matches(actual_rows: list[dict], expected: dict[tuple, dict]) -> None:
    actual = {(r["user_id"], r["window_start"], r["window_end"]): r for r in actual_rows}
    assert len(actual) == len(actual_rows), "a (user, window) appears twice"
    missing = sorted(set(expected) - set(actual))[:5]
    extra = sorted(set(actual) - set(expected))[:5]
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"
    for key, values in expected.items():
        for column, value in values.items():
            got = actual[key][column]
            if isinstance(value, float):
                assert got is not None and math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (key, column, got, value)
            else:
                assert got == value, (key, column, got, value)


def assert_partitions(rows: list[dict]) -> None:
    for row in rows:
        assert row["dt"] == int(row["window_start"].strftime("%Y%m%d"))
        assert row["hr"] == row["window_start"].hour


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    lines = generate(seed=7, events=3000, users=25, duplicate_share=0.15)
    out = run_backfill(tmp_path_factory.mktemp("main"), lines)
    arrival = datetime.now(timezone.utc)  # the input file's modification time stands in for arrival
    return lines, out, oracle.replay(lines, arrival, DELAY)


def test_user_activity_5m_matches_oracle(main_run):
    lines, out, expected = main_run
    rows = read_rows(out / "user_activity_5m")
    assert_matches(rows, oracle.user_activity_5m(expected))
    assert_partitions(rows)


def test_user_activity_1h_matches_oracle(main_run):
    lines, out, expected = main_run
    rows = read_rows(out / "user_activity_1h")
    assert_matches(rows, oracle.user_activity_1h(expected))
    assert_partitions(rows)


def test_duplicates_counted_once(main_run):
    lines, out, expected = main_run
    # Re-sends arriving after the watermark passed them are late rather than duplicates: either
    # way they count once. Every late record here is such a re-send (originals are within the bound).
    counted_txids = {e.txid for e in expected.counted}
    assert all(json.loads(payload)["txid"] in counted_txids for payload, _ in expected.late)
    assert expected.duplicates + len(expected.late) >= 0.1 * 3000
    total = sum(r["event_count"] for r in read_rows(out / "user_activity_1h"))
    assert total == len(expected.counted) == 3000


def test_malformed_records_are_quarantined_with_reasons(main_run):
    lines, out, expected = main_run
    rows = read_rows(out / "_quarantine")
    assert sorted((r["payload"], r["reason"]) for r in rows) == sorted(expected.quarantined)
    reasons = {r["reason"] for r in rows}
    assert {"not a JSON object", "missing or empty txid", "missing or empty user_id", "missing or empty event_type",
            "missing event_time", "unparseable event_time", "amount is not a number",
            "event_time more than 300 s after arrival"} <= reasons


def test_late_events_are_kept_out_of_features_and_in_the_late_output(tmp_path):
    lines = generate(seed=11, events=600, users=5, duplicate_share=0.1, late=8)
    out = run_backfill(tmp_path, lines)
    expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    late_txids = {json.loads(payload)["txid"] for payload, _ in expected.late}
    counted_txids = {e.txid for e in expected.counted}
    assert {f"late-{n}" for n in range(8)} <= late_txids  # the rest are re-sends of counted events
    assert all(txid.startswith("late-") or txid in counted_txids for txid in late_txids)
    assert_matches(read_rows(out / "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(read_rows(out / "user_activity_1h"), oracle.user_activity_1h(expected))
    late_rows = read_rows(out / "_late")
    assert sorted((r["payload"], r["missed_watermark"]) for r in late_rows) == sorted(
        (payload, watermark.replace(tzinfo=None)) for payload, watermark in expected.late)
    assert all(r["event_time"] <= r["missed_watermark"] for r in late_rows)
