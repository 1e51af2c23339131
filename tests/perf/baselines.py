"""The designs the job replaces, reading the same Kinesis endpoint and writing the same tables.

    python -m tests.perf.baselines windowed  --config C --stats OUT.json [--seconds S] [--delay-seconds D]
    python -m tests.perf.baselines per-event --config C --stats OUT.json [--seconds S]

* ``windowed``: one Python consumer (boto3 GetRecords on every shard) keeps the dedup set and the
  window dicts of tests/perf/baseline_features.py and upserts each window's rows when the
  watermark closes it, in batches of 500 with a commit per batch (the job's JDBC batch size).
* ``per-event``: the Lambda -> RDS design: per event, one transaction inserts the txid into a
  seen table (ON CONFLICT DO NOTHING) and, if it is new, upsert-increments the event's five HOP
  rows and its hour row. Rows are visible at once but partial until their window ends.

Both run until ``--seconds`` pass or SIGTERM/SIGINT, then write ``--stats`` (JSON): records
read, events counted, wall times of the first read and last commit, and for per-event the commit
time of every probe event (tests/perf/feed.is_probe), whose freshness it cannot show otherwise.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import psycopg

from deploy.local import aws
from deploy.local import config as local_config
from tests.perf.baseline_features import (HOP_SIZE_MS, HOUR_MS, Row1h, Row5m, WindowedFeatures, as_datetime,
                                          hop_window_ends, hour_window_end, parse)
from tests.perf.feed import is_probe

BATCH_ROWS = 500  # the job's rds.batch.size
GET_LIMIT = 10_000  # GetRecords' maximum, as the Flink connector asks
EMPTY_POLL_S = 0.2  # the Flink connector's default pause between GetRecords calls

UPSERT_5M = """
INSERT INTO user_activity_5m (user_id, window_start, window_end, event_count, a_event_count, amount_sum)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (user_id, window_end, window_start) DO UPDATE SET
  event_count = EXCLUDED.event_count, a_event_count = EXCLUDED.a_event_count, amount_sum = EXCLUDED.amount_sum"""

UPSERT_1H = """
INSERT INTO user_activity_1h (user_id, window_start, window_end, event_count, a_event_count, amount_sum,
                              amount_max, distinct_event_types)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (user_id, window_end, window_start) DO UPDATE SET
  event_count = EXCLUDED.event_count, a_event_count = EXCLUDED.a_event_count, amount_sum = EXCLUDED.amount_sum,
  amount_max = EXCLUDED.amount_max, distinct_event_types = EXCLUDED.distinct_event_types"""

# The per-event design's own bookkeeping: txids seen, and (user, hour, type) seen so the hour
# row's distinct_event_types can be incremented instead of recomputed.
PER_EVENT_DDL = (
    "CREATE TABLE IF NOT EXISTS seen_txids (txid text PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS seen_hour_types (user_id text, window_start timestamp(3), event_type text,"
    " PRIMARY KEY (user_id, window_start, event_type))",
)

INSERT_SEEN = "INSERT INTO seen_txids (txid) VALUES (%s) ON CONFLICT DO NOTHING"

INCREMENT_5M = """
INSERT INTO user_activity_5m AS t (user_id, window_start, window_end, event_count, a_event_count, amount_sum)
VALUES {values}
ON CONFLICT (user_id, window_end, window_start) DO UPDATE SET
  event_count = t.event_count + 1, a_event_count = t.a_event_count + EXCLUDED.a_event_count,
  amount_sum = t.amount_sum + EXCLUDED.amount_sum"""
INCREMENT_5M_ROWS = INCREMENT_5M.format(values=", ".join(["(%s, %s, %s, 1, %s, %s)"] * (HOP_SIZE_MS // 60_000)))

INCREMENT_1H = """
WITH new_type AS (
  INSERT INTO seen_hour_types (user_id, window_start, event_type) VALUES (%(user)s, %(start)s, %(type)s)
  ON CONFLICT DO NOTHING RETURNING 1)
INSERT INTO user_activity_1h AS t (user_id, window_start, window_end, event_count, a_event_count, amount_sum,
                                   amount_max, distinct_event_types)
VALUES (%(user)s, %(start)s, %(end)s, 1, %(a)s, %(amount)s, %(max)s, 1)
ON CONFLICT (user_id, window_end, window_start) DO UPDATE SET
  event_count = t.event_count + 1, a_event_count = t.a_event_count + EXCLUDED.a_event_count,
  amount_sum = t.amount_sum + EXCLUDED.amount_sum, amount_max = GREATEST(t.amount_max, EXCLUDED.amount_max),
  distinct_event_types = t.distinct_event_types + (SELECT count(*) FROM new_type)"""


class Stopper:
    """Stops the read loop on a deadline or on SIGTERM/SIGINT (the bench ends baselines so)."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = time.monotonic() + seconds if seconds else None
        self.signalled = False
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)

    def _signal(self, signum: int, frame: Any) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        return self.signalled or (self.deadline is not None and time.monotonic() >= self.deadline)


def read_stream(kinesis: Any, stream: str, stop: Callable[[], bool]) -> Iterator[list[bytes]]:
    """Every shard from its start (TRIM_HORIZON), one GetRecords batch at a time, until ``stop``."""
    iterators = {shard["ShardId"]: kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                 for shard in kinesis.list_shards(StreamName=stream)["Shards"]}
    while not stop():
        got = 0
        for shard, iterator in list(iterators.items()):
            response = kinesis.get_records(ShardIterator=iterator, Limit=GET_LIMIT)
            iterators[shard] = response["NextShardIterator"]
            if response["Records"]:
                got += len(response["Records"])
                yield [record["Data"] for record in response["Records"]]
        if not got:
            time.sleep(EMPTY_POLL_S)


class Stats:
    def __init__(self) -> None:
        self.records = 0
        self.counted = 0
        self.first_read: float | None = None
        self.last_commit: float | None = None
        self.probe_commits: dict[str, float] = {}

    def write(self, path: Path, **extra: Any) -> None:
        path.write_text(json.dumps({"records": self.records, "counted": self.counted, "first_read": self.first_read,
                                    "last_commit": self.last_commit, "probe_commits": self.probe_commits, **extra}))


def write_rows(connection: psycopg.Connection, rows_5m: Sequence[Row5m], rows_1h: Sequence[Row1h]) -> None:
    """Batched upserts, one commit per batch, as the job's JDBC sink flushes."""
    with connection.cursor() as cursor:
        for statement, rows in ((UPSERT_5M, rows_5m), (UPSERT_1H, rows_1h)):
            for first in range(0, len(rows), BATCH_ROWS):
                cursor.executemany(statement, rows[first:first + BATCH_ROWS])
                connection.commit()


def run_windowed(kinesis: Any, stream: str, connection: psycopg.Connection, delay_ms: int,
                 stop: Callable[[], bool], stats: Stats) -> WindowedFeatures:
    features = WindowedFeatures(delay_ms)
    for batch in read_stream(kinesis, stream, stop):
        stats.first_read = stats.first_read or time.time()
        stats.records += len(batch)
        for payload in batch:
            event = parse(payload)
            if event is not None and features.add(event):
                stats.counted += 1
        rows_5m, rows_1h = features.pop_final()
        if rows_5m or rows_1h:
            write_rows(connection, rows_5m, rows_1h)
            stats.last_commit = time.time()
    return features


def prepare_per_event(connection: psycopg.Connection) -> None:
    with connection.cursor() as cursor:
        for statement in PER_EVENT_DDL:
            cursor.execute(statement)
    connection.commit()


def run_per_event(kinesis: Any, stream: str, connection: psycopg.Connection, stop: Callable[[], bool],
                  stats: Stats) -> None:
    with connection.cursor() as cursor:
        for batch in read_stream(kinesis, stream, stop):
            stats.first_read = stats.first_read or time.time()
            for payload in batch:
                if stop():  # a time budget ends mid-batch: stop at the event, not after 10,000
                    return
                stats.records += 1
                event = parse(payload)
                if event is None:
                    continue
                cursor.execute(INSERT_SEEN, (event.txid,))
                if cursor.rowcount == 1:
                    a_count = 1 if event.event_type == "A" else 0
                    amount = event.amount or 0.0
                    params: list[Any] = []
                    for end in hop_window_ends(event.time_ms):
                        params += [event.user_id, as_datetime(end - HOP_SIZE_MS), as_datetime(end), a_count, amount]
                    cursor.execute(INCREMENT_5M_ROWS, params)
                    end = hour_window_end(event.time_ms)
                    cursor.execute(INCREMENT_1H, {"user": event.user_id, "start": as_datetime(end - HOUR_MS),
                                                  "end": as_datetime(end), "type": event.event_type, "a": a_count,
                                                  "amount": amount, "max": event.amount})
                    stats.counted += 1
                connection.commit()
                stats.last_commit = time.time()
                if is_probe(event.user_id):
                    stats.probe_commits.setdefault(event.txid, stats.last_commit)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("design", choices=("windowed", "per-event"))
    parser.add_argument("--config", type=Path, required=True, help="stream and database (the job's config format)")
    parser.add_argument("--stats", type=Path, required=True, help="where to write the figures (JSON)")
    parser.add_argument("--seconds", type=float, default=None, help="time budget (default: until SIGTERM)")
    parser.add_argument("--delay-seconds", type=int, default=30, help="watermark delay (windowed)")
    parser.add_argument("--synchronous-commit", action="store_true",
                        help="each commit waits for the WAL flush (RDS's default; deploy/local's server does not wait)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = local_config.load(args.config)
    stop = Stopper(args.seconds)
    stats = Stats()
    kinesis = aws.kinesis(settings)
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        if args.synchronous_commit:
            connection.execute("SET synchronous_commit = on")
            connection.commit()
        if args.design == "windowed":
            features = run_windowed(kinesis, settings.stream_name, connection, args.delay_seconds * 1000, stop, stats)
            stats.write(args.stats, late=features.late, duplicates=features.duplicates)
        else:
            prepare_per_event(connection)
            run_per_event(kinesis, settings.stream_name, connection, stop, stats)
            stats.write(args.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
