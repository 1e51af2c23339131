"""validate / explain / backfill as a user runs them: exit codes, messages, plan shape, new features."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from jobs import feature_job
from tests import oracle
from tests.integration.stack import clean_env
from tests.sql.test_backfill_oracle import CONFIG, DELAY, ROOT, assert_matches, generate, read_rows, run_backfill


def copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", target)
    return target


def test_validate_accepts_the_shipped_sql(capsys):
    assert feature_job.main(["validate", "--config", str(CONFIG)]) == 0
    assert "OK: 2 feature group(s) (user_activity_1h, user_activity_5m), 12 derived sink(s)" in capsys.readouterr().out


def test_explain_shares_one_source_scan_and_one_dedup(capsys):
    assert feature_job.main(["explain", "--config", str(CONFIG)]) == 0
    plan = capsys.readouterr().out.split("== Optimized Execution Plan ==")[1]
    assert len(re.findall(r"TableSourceScan\(", plan)) == 1
    assert len(re.findall(r"Deduplicate\(keep=\[FirstRow\], key=\[txid\]", plan)) == 1
    assert len(re.findall(r"WatermarkAssigner\(", plan)) == 1  # each record is parsed once for all sinks
    # 2 features x (Parquet, PostgreSQL, counter, progress to Parquet and PostgreSQL) + the 5-minute
    # group's fresh slices (Parquet, PostgreSQL; the 1-hour group's COUNT DISTINCT has none) +
    # quarantine, late, raw archive + 5 counters
    assert len(re.findall(r"^Sink\(", plan, flags=re.MULTILINE)) == 20
    # One progress marker aggregate per feature, emitted once per window (a window aggregate).
    # (one-phase: table.optimizer.agg-phase-strategy, see jobs/streaming/environment.py)
    assert len(re.findall(r"\bWindowAggregate\(window=\[\w+\(win_start=\[window_start\], win_end=\[window_end\]", plan)) == 2
    # ... on ONE subtask whatever the parallelism (no group key: a singleton exchange), so a group's
    # markers leave the job in window order (the reads rely on it).
    assert len(re.findall(r"\bWindowAggregate\(window=\[\w+\(win_start=\[window_start\][^\n]*\n\s*\+- "
                          r"Exchange\(distribution=\[single\]\)", plan)) == 2
    # The watermark never runs ahead of arrival (a fast client clock), see sources/events_parsed.sql.
    assert re.search(r"WatermarkAssigner\(rowtime=\[event_time\], watermark=\[CASE\(.*LEAST\(event_time, arrival_time\)", plan)


def test_sql_error_names_file_and_line(tmp_path, capsys):
    sql = copy_sql(tmp_path)
    (sql / "features" / "broken.sql").write_text(
        "-- a feature with a typo\nSELECT user_id, window_start, window_end,\n  COUNT(*) AS n,\n  SUM(amout) AS s\n"
        "FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))\n"
        "GROUP BY user_id, window_start, window_end\n"
    )
    assert feature_job.main(["validate", "--config", str(CONFIG), "--sql-dir", str(sql)]) == 2
    error = capsys.readouterr().err
    assert f"{sql / 'features' / 'broken.sql'}:4:" in error
    assert "amout" in error


def test_feature_without_window_columns_is_refused(tmp_path, capsys):
    sql = copy_sql(tmp_path)
    (sql / "features" / "no_window.sql").write_text("SELECT user_id, COUNT(*) AS n FROM events_deduped GROUP BY user_id\n")
    assert feature_job.main(["validate", "--config", str(CONFIG), "--sql-dir", str(sql)]) == 2
    assert "no_window.sql:1: feature 'no_window' must output window_start, window_end" in capsys.readouterr().err


def test_bad_config_names_group_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(CONFIG.read_text().replace('"watermark.delay.seconds": "30"', '"watermark.delay.seconds": "-1"'))
    assert feature_job.main(["validate", "--config", str(bad)]) == 2
    assert "property group 'events' key 'watermark.delay.seconds': must be a non-negative integer" in capsys.readouterr().err


def test_a_new_feature_file_needs_no_code_change(tmp_path):
    """Copy the example (which calls the spend_bucket Python UDF) into features/ and backfill."""
    sql = copy_sql(tmp_path)
    shutil.copy(sql / "examples" / "user_spend_buckets_1h.sql", sql / "features")
    lines = generate(seed=3, events=400, users=6, duplicate_share=0.1)
    out = run_backfill(tmp_path, lines, sql_dir=sql)

    expected = oracle.user_spend_buckets_1h(oracle.replay(lines, datetime.now(timezone.utc), DELAY))
    assert_matches(read_rows(out / "user_spend_buckets_1h"), expected)
    assert (out / "user_activity_5m").is_dir()  # the shipped features still run alongside


def test_backfill_is_utc_whatever_the_machine_zone(tmp_path):
    """A fresh JVM under TZ=Asia/Seoul gives the same UTC windows as the oracle."""
    lines = generate(seed=5, events=300, users=4, duplicate_share=0.1)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    # A clean environment: not this process's JVM settings nor its PyFlink gateway.
    env = clean_env(TZ="Asia/Seoul")
    result = subprocess.run([sys.executable, "-m", "jobs.feature_job", "backfill", "--config", str(CONFIG),
                             "--input", str(source), "--output-dir", str(out), "--include-partial-windows"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    assert_matches(read_rows(out / "user_activity_1h"), oracle.user_activity_1h(expected))
    assert_matches(read_rows(out / "user_activity_5m"), oracle.user_activity_5m(expected))


def test_backfill_reads_a_folder_in_name_order(tmp_path):
    lines = generate(seed=9, events=300, users=4, duplicate_share=0.1)
    folder = tmp_path / "archive"
    folder.mkdir()
    half = len(lines) // 2
    (folder / "part-2.jsonl").write_text("\n".join(lines[half:]))  # no trailing newline: still split
    (folder / "part-1.jsonl").write_text("\n".join(lines[:half]))
    out = tmp_path / "out"
    assert feature_job.main(["backfill", "--config", str(CONFIG), "--input", str(folder), "--output-dir", str(out),
                             "--include-partial-windows"]) == 0
    expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    assert_matches(read_rows(out / "user_activity_5m"), oracle.user_activity_5m(expected))


def test_backfill_replays_the_raw_archive_in_arrival_order(tmp_path):
    """Two shards' archive files whose name order is not arrival order; arrival times come from the
    archive, so the future-dated check uses each record's own arrival."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = generate(seed=13, events=400, users=5, duplicate_share=0.1)
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
    arrivals = [start + oracle.timedelta(seconds=i * 10) for i in range(len(lines))]  # ~70 min, like the events
    lines.append('{"txid": "f-1", "user_id": "u-1", "event_type": "A", "event_time": "2026-01-01T05:00:00Z"}')
    arrivals.append(arrivals[-1] + oracle.timedelta(seconds=1))  # 3+ hours ahead of its arrival
    shards = {"shardId-000000000001": [], "shardId-000000000000": []}
    for n, (line, arrived) in enumerate(zip(lines, arrivals)):
        shard = sorted(shards)[n % 2]
        shards[shard].append((line, arrived, shard, str(10**20 + n)))
    folder = tmp_path / "_raw" / "dt=20260101" / "hr=00"
    folder.mkdir(parents=True)
    for name, shard in (("part-a", "shardId-000000000001"), ("part-b", "shardId-000000000000")):
        rows = shards[shard]
        pq.write_table(pa.table({
            "payload": [r[0] for r in rows], "arrival_time": pa.array([r[1] for r in rows], pa.timestamp("ms", tz="UTC")),
            "shard_id": [r[2] for r in rows], "sequence_number": [r[3] for r in rows],
        }), folder / name)
    (folder / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    assert feature_job.main(["backfill", "--config", str(CONFIG), "--input", str(tmp_path / "_raw"),
                             "--output-dir", str(out), "--include-partial-windows"]) == 0
    expected = oracle.replay(lines, arrivals, DELAY)
    assert ("event_time more than 300 s after arrival" in {reason for _, reason in expected.quarantined})
    assert_matches(read_rows(out / "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(read_rows(out / "user_activity_1h"), oracle.user_activity_1h(expected))
    quarantined = read_rows(out / "_quarantine")
    assert sorted((r["payload"], r["reason"]) for r in quarantined) == sorted(expected.quarantined)
