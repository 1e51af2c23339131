"""Records as the raw archive holds them (sql/sinks/kinesis/raw_archive.sql): Parquet files with
payload, arrival_time, shard_id, sequence_number, in dt=YYYYMMDD/hr=HH folders by arrival hour."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests import oracle

ARCHIVE_SCHEMA = pa.schema([("payload", pa.string()), ("arrival_time", pa.timestamp("ms", tz="UTC")),
                            ("shard_id", pa.string()), ("sequence_number", pa.string())])


def _event_time(line: str) -> datetime | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return oracle.parse_time(record.get("event_time")) if isinstance(record, dict) else None


def arrival_times(lines: list[str], start: datetime) -> list[datetime]:
    """Plausible Kinesis arrival times for lines in arrival order: 1 s after the newest event time
    seen so far, strictly increasing. A line dated more than 10 minutes ahead of that (future-dated)
    does not move it, so it stays future-dated."""
    arrivals = []
    newest = start
    for line in lines:
        moment = _event_time(line)
        if moment is not None and newest < moment <= newest + timedelta(minutes=10):
            newest = moment
        previous = arrivals[-1] if arrivals else start
        arrivals.append(max(newest + timedelta(seconds=1), previous + timedelta(milliseconds=1)))
    return arrivals


def write_archive(folder: Path, lines: list[str], arrivals: list[datetime], shards: int = 2) -> None:
    """One file per shard and arrival hour: record n goes to shard n % shards, with sequence numbers
    growing per shard. The file names do not sort in arrival order (shard 1's file comes first)."""
    files: dict[tuple[str, str], list[tuple]] = {}
    for n, (line, arrived) in enumerate(zip(lines, arrivals, strict=True)):
        shard = f"shardId-{n % shards:012d}"
        partition = f"dt={arrived:%Y%m%d}/hr={arrived:%H}"
        files.setdefault((partition, shard), []).append((line, arrived, shard, str(49_000_000 + n)))
    for (partition, shard), rows in files.items():
        target = folder / partition
        target.mkdir(parents=True, exist_ok=True)
        columns = list(zip(*rows))
        pq.write_table(pa.table(columns, schema=ARCHIVE_SCHEMA), target / f"part-{shards - int(shard[-1])}-{shard}.parquet")
        (target / "_SUCCESS").write_text("")
