"""By default a backfill writes only the windows its input covers completely (JSON lines here; the
raw archive into PostgreSQL: tests/integration/test_backfill_correction.py)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from jobs import feature_job
from tests import oracle
from tests.sql.test_backfill_oracle import CONFIG, DELAY, assert_matches, generate, read_rows


def test_backfill_of_json_lines_skips_the_windows_it_covers_only_in_part(tmp_path, capsys):
    lines = generate(seed=23, events=800, users=6, duplicate_share=0.1)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert feature_job.main(["backfill", "--config", str(CONFIG), "--input", str(source), "--output-dir", str(out)]) == 0

    outcome = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    valid_times = [e.event_time.replace(tzinfo=None) for e in outcome.counted]
    # The earliest valid event time + the watermark delay; the newest - the delay.
    first_start, last_end = min(valid_times) + DELAY, max(valid_times) - DELAY
    printed = capsys.readouterr().out
    every = oracle.user_activity_5m(outcome)
    complete = {key: values for key, values in every.items() if key[1] >= first_start and key[2] <= last_end}
    assert len(every) > len(complete) > 0
    assert_matches(read_rows(out / "user_activity_5m"), complete)
    markers = {(r["window_start"], r["window_end"]): r["row_count"] for r in read_rows(out / "_progress" / "user_activity_5m")}
    assert markers == Counter((start, end) for _, start, end in complete)
    first, last = min(complete, key=lambda key: key[1]), max(complete, key=lambda key: key[1])
    assert f"user_activity_5m: windows [{first[1]}, {first[2]}) to [{last[1]}, {last[2]}) written; skipped " in printed
    # 70 minutes of events from 00:00 hold no complete hour after the first half minute.
    assert not list(out.glob("user_activity_1h/**/*.parquet"))
    assert "user_activity_1h: no window is complete in the input; skipped 2 " in printed
