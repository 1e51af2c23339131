"""Peak memory of the backfill's input preparation (jobs/backfill/input_file.py) on a generated archive.

    python -m tests.perf.bench_backfill_memory [--records 1500000] [--hours 6] [--backfill]

Writes a raw archive in the live job's layout (Parquet: payload, arrival_time, shard_id,
sequence_number; dt=YYYYMMDD/hr=HH folders, one file per shard and hour), and the same records as
JSON-lines files (one per hour). Each preparation runs in a fresh Python process that prints its
peak RSS, so the figures do not mix. ``--backfill`` also runs the whole command over the archive
(into a discarding folder) with and without --include-partial-windows: the cost of measuring the
input's span. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.archive import ARCHIVE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SHARDS = 2


def _hour(rng: random.Random, hour: int, records: int, first_sequence: int) -> dict[str, list]:
    """One hour of records in arrival order, alternating shards, events up to 20 s before arrival."""
    start = START + timedelta(hours=hour)
    step = timedelta(hours=1) / records
    columns: dict[str, list] = {name: [] for name in ARCHIVE_SCHEMA.names}
    for n in range(records):
        arrival = start + n * step
        event_time = arrival - timedelta(milliseconds=rng.randrange(20_000))
        columns["payload"].append(json.dumps({
            "txid": f"t-{first_sequence + n}", "user_id": f"u-{rng.randrange(100_000)}", "event_type": rng.choice("AABCD"),
            "event_time": event_time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event_time.microsecond // 1000:03d}Z",
            "amount": round(rng.uniform(0, 200), 2)}))
        columns["arrival_time"].append(arrival)
        columns["shard_id"].append(f"shardId-{n % SHARDS:012d}")
        columns["sequence_number"].append(str(49_000_000_000 + first_sequence + n))
    return columns


def write_inputs(folder: Path, records: int, hours: int) -> tuple[Path, Path, int]:
    """(archive folder, JSON-lines folder, the records' size as Arrow) of the same records."""
    rng = random.Random(1)
    arrow_bytes = 0
    archive, lines = folder / "_raw", folder / "jsonl"
    lines.mkdir(parents=True)
    per_hour = records // hours
    for hour in range(hours):
        columns = _hour(rng, hour, per_hour, hour * per_hour)
        table = pa.table(columns, schema=ARCHIVE_SCHEMA)
        arrow_bytes += table.nbytes
        moment = START + timedelta(hours=hour)
        partition = archive / f"dt={moment:%Y%m%d}" / f"hr={moment:%H}"
        partition.mkdir(parents=True)
        for shard in range(SHARDS):  # each shard's writer: its own records, in arrival order
            mine = table.filter(pc.equal(table["shard_id"], f"shardId-{shard:012d}"))
            pq.write_table(mine, partition / f"part-{SHARDS - shard}-{hour}.parquet")
        (lines / f"events-{hour:02d}.jsonl").write_text("\n".join(columns["payload"]) + "\n")
    return archive, lines, arrow_bytes


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry over the parent's peak
    through fork and exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def _child(kind: str, source: Path) -> None:
    """In a fresh process: prepare ``source`` (or only import, for the baseline); print peak RSS."""
    from jobs.backfill import input_file

    started = time.perf_counter()
    if kind != "baseline":
        with tempfile.TemporaryDirectory() as scratch:
            input_file.prepare(source, Path(scratch))
    seconds = time.perf_counter() - started
    print(json.dumps({"peak_mib": _peak_rss_mib(), "seconds": seconds}))


def _measure(kind: str, source: Path) -> dict:
    result = subprocess.run([sys.executable, "-m", "tests.perf.bench_backfill_memory", "--child", kind, str(source)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _backfill_seconds(archive: Path, folder: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jobs.feature_job", "backfill", "--config", str(CONFIG),
                             "--input", str(archive), "--output-dir", str(folder / f"out{len(extra)}"), *extra],
                            cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"backfill {' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_500_000)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--backfill", action="store_true", help="also time the whole command, span measured or not")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        archive, lines, arrow_bytes = write_inputs(folder, args.records, args.hours)
        print(f"{args.records:,} records over {args.hours} h: archive {_size(archive) / 2**20:,.0f} MiB on disk "
              f"({arrow_bytes / 2**20:,.0f} MiB as Arrow), JSON lines {_size(lines) / 2**20:,.0f} MiB in {args.hours} files")
        baseline = _measure("baseline", archive)
        print(f"{'python + pyarrow + jobs imported':34s} peak RSS {baseline['peak_mib']:7,.0f} MiB")
        for label, source in (("raw archive: sorted by arrival", archive), ("JSON lines: joined in name order", lines)):
            figures = _measure("prepare", source)
            print(f"{label:34s} peak RSS {figures['peak_mib']:7,.0f} MiB  {figures['seconds']:6.1f} s")
        if args.backfill:
            partial = _backfill_seconds(archive, folder, ["--include-partial-windows"])
            complete = _backfill_seconds(archive, folder, [])
            print(f"backfill of the archive: {complete:.1f} s (only complete windows: span measured first), "
                  f"{partial:.1f} s (--include-partial-windows)")


if __name__ == "__main__":
    main()
