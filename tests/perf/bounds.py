"""What the services around the job can do on their own (no job running): the ceiling any
consumer of this endpoint and this database works under, so the job's headroom is visible."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg

from tests.perf.baseline_features import EPOCH
from tests.perf.baselines import BATCH_ROWS, GET_LIMIT, UPSERT_5M


def get_records_rate(kinesis: Any, stream: str, expected: int, timeout_s: float = 300) -> tuple[int, float]:
    """Read the stream from its start with plain GetRecords (10,000 a call), nothing else.

    Returns (records read, seconds)."""
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    read = 0
    started = time.perf_counter()
    for shard in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator and time.perf_counter() - started < timeout_s:
            response = kinesis.get_records(ShardIterator=iterator, Limit=GET_LIMIT)
            read += len(response["Records"])
            iterator = response.get("NextShardIterator")
            if not response["Records"]:  # caught up with this shard
                break
    if read < expected:
        raise RuntimeError(f"GetRecords returned {read:,} of {expected:,} records in {timeout_s:.0f} s")
    return read, time.perf_counter() - started


def upsert_rate(conninfo: dict[str, Any], rows: int, users: int = 100_000, synchronous_commit: bool = False) -> float:
    """Rows per second of batched upserts into user_activity_5m (500 a batch, a commit per batch,
    like the job's JDBC sink): new windows of ``users`` users, as each minute's emission brings.
    ``synchronous_commit``: each commit waits for the WAL flush, as on RDS."""
    first_end = EPOCH + timedelta(days=1 + synchronous_commit)  # new keys on each call
    batch: list[tuple[Any, ...]] = []
    with psycopg.connect(**conninfo) as connection, connection.cursor() as cursor:
        cursor.execute(f"SET synchronous_commit = {'on' if synchronous_commit else 'off'}")
        connection.commit()
        started = time.perf_counter()
        for i in range(rows):
            end = first_end + timedelta(minutes=i // users)
            batch.append((f"u-{i % users}", end - timedelta(minutes=5), end, 3, 1, 42.5))
            if len(batch) == BATCH_ROWS or i == rows - 1:
                cursor.executemany(UPSERT_5M, batch)
                connection.commit()
                batch.clear()
        return rows / (time.perf_counter() - started)
