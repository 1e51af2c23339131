"""Dedup ordering: processing time vs event time, measured side by side on the same events.

    python -m tests.perf.bench_dedup_order [--events 300000]

For each ordering it runs the shipped features over a generated JSON-lines file into a discarding
sink and prints events/s, the windows emitted, and whether each ordering's output matches the oracle
(which includes late events). Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from jobs import feature_job
from tests import oracle
from tests.sql.test_backfill_oracle import CONFIG, DELAY, ROOT, generate, read_rows

ORDERINGS = {"processing time (shipped)": "proc_time", "event time": "event_time"}


def _sql_dir(scratch: Path, order_column: str) -> Path:
    sql = scratch / f"sql-{order_column}"
    shutil.copytree(ROOT / "sql", sql)
    view = sql / "views" / "events_deduped.sql"
    view.write_text(view.read_text().replace("ORDER BY proc_time ASC", f"ORDER BY {order_column} ASC"))
    return sql


def _matches(rows: list[dict], expected: dict) -> bool:
    actual = {(r["user_id"], r["window_start"], r["window_end"]): r["event_count"] for r in rows}
    return actual == {key: values["event_count"] for key, values in expected.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        lines = generate(seed=1, events=args.events, users=10_000, duplicate_share=0.1, late=50)
        source = scratch / "events.jsonl"
        source.write_text("\n".join(lines) + "\n")
        expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
        expected_5m = oracle.user_activity_5m(expected)
        print(f"{len(lines):,} records ({args.events:,} events, 10% duplicates, 50 late, malformed lines)")
        # Warm the JVM first so neither ordering pays for JIT compilation.
        warmup = scratch / "warmup.jsonl"
        warmup.write_text("\n".join(lines[:20_000]) + "\n")
        feature_job.main(["backfill", "--config", str(CONFIG), "--input", str(warmup), "--output-dir", str(scratch / "w"),
                          "--include-partial-windows"])
        for label, column in ORDERINGS.items():
            out = scratch / f"out-{column}"
            started = time.perf_counter()
            feature_job.main(["backfill", "--config", str(CONFIG), "--input", str(source),
                              "--output-dir", str(out), "--sql-dir", str(_sql_dir(scratch, column)),
                              "--include-partial-windows"])
            seconds = time.perf_counter() - started
            rows = read_rows(out / "user_activity_5m")
            print(f"{label:28s} {len(lines) / seconds:>10,.0f} records/s  {seconds:6.1f} s  "
                  f"{len(rows):,} 5m windows  matches oracle: {_matches(rows, expected_5m)}")


if __name__ == "__main__":
    main()
