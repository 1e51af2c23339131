"""Online read latency: jobs.reads.serving's get_features against a realistically filled PostgreSQL.

    python -m tests.perf.serving_latency [--users 100000] [--hours 6] [--requests 2000]

Fills its own database with a week-like shape of rows (``--users`` users, a fifth of them active
in each 5-minute window, every minute for ``--hours``; the hourly group alike) and the progress
markers the job would have written, then times get_features calls: one user, and 100 users in one
call, each as of "now" (steady state: the window is already known complete) and as of a moment
whose window was never read (the first read of a new window also counts its rows). Fresh reads
(get_features(fresh=True), the 5-minute group: the only one slices can combine) against its
fresh slice table filled for the span ending now: every user has its 5 slices, each slice its 2 kept
versions, as after a busy minute; next to them the window read of the same group. Side by side,
the naive read that gets the wrong answer: the user's latest row. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from jobs import feature_job
from jobs.definitions.config import load
from jobs.reads.fresh import slice_starts
from jobs.reads.serving import OnlineStore
from tests.integration.stack import start_services, write_config
from tests.perf.freshness import percentile

NAME = "perf-serving"
END = datetime(2026, 1, 8)  # the newest window end in the filled tables
FRESH_GROUP = "user_activity_5m"
FRESH_INTERVAL = timedelta(seconds=5)  # features.fresh.interval.seconds, shipped


def _fill(conninfo: dict, users: int, hours: int, seed: int = 1) -> int:
    """Rows of both shipped groups plus their markers; returns the number of feature rows."""
    rng = random.Random(seed)
    groups = {"user_activity_5m": (timedelta(minutes=1), timedelta(minutes=5), hours * 60),
              "user_activity_1h": (timedelta(hours=1), timedelta(hours=1), hours)}
    total = 0
    with psycopg.connect(**conninfo) as connection, connection.cursor() as cursor:
        for name, (slide, size, windows) in groups.items():
            columns = ["user_id", "window_start", "window_end", "event_count", "a_event_count", "amount_sum"]
            if name == "user_activity_1h":
                columns += ["amount_max", "distinct_event_types"]
            markers = []
            with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for n in range(windows):
                    end = END - n * slide
                    active = rng.sample(range(users), users // 5)
                    for user in active:
                        count = rng.randint(1, 6)
                        row = [f"u-{user}", end - size, end, count, count // 2, count * 12.5]
                        copy.write_row(row + ([40.0, 2] if name == "user_activity_1h" else []))
                    markers.append((name, end - size, end, len(active)))
                    total += len(active)
            cursor.executemany("INSERT INTO feature_progress VALUES (%s, %s, %s, %s)", markers)
        connection.commit()
        connection.execute("ANALYZE")
    return total


def _fill_fresh(conninfo: dict, store: OnlineStore, users: int, seed: int = 3) -> int:
    """The 5-minute group's slices for a fresh read now: each user's 5 slices of the span, each with
    its last two versions (the older one an interval before), all served already. The group's
    markers (from _fill, served_from NULL) make it count as served. Returns the rows."""
    rng = random.Random(seed)
    plan = store.fresh_plans[FRESH_GROUP]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    starts = slice_starts(now, plan)
    columns = ["user_id", "window_start", "window_end", "slot", "version", "written_at", "served_from",
               "event_count", "a_event_count", "amount_sum"]
    with psycopg.connect(**conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY {plan.table} ({', '.join(columns)}) FROM STDIN") as copy:
            for user in range(users):
                for start in starts:
                    latest = rng.randint(2, 12)  # the slice's version count so far
                    written = min(start + plan.slice_width, now) - timedelta(seconds=2)
                    for version in (latest - 1, latest):
                        at = written - (latest - version) * FRESH_INTERVAL
                        count = rng.randint(1, 6)
                        copy.write_row([f"u-{user}", start, start + plan.slice_width, version % 2, version, at,
                                        at + timedelta(seconds=1), count, count // 2, count * 12.5])
        connection.commit()
        connection.execute(f"ANALYZE {plan.table}")
    return users * len(starts) * 2


def _time(call, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="perf-serving-") as scratch:
        config_path = write_config(Path(scratch), NAME)
        settings = start_services(config_path)
        assert feature_job.main(["migrate", "--config", str(config_path)]) == 0
        started = time.perf_counter()
        rows = _fill(settings.postgres.conninfo(), args.users, args.hours)
        fill_seconds = time.perf_counter() - started
        rng = random.Random(2)
        pick = lambda n: [f"u-{rng.randrange(args.users)}" for _ in range(n)]  # noqa: E731
        results = []
        with OnlineStore(load(config_path, "serve")) as store:
            store.get_features(pick(1), as_of=END)  # pool and column cache warm
            for label, users in (("1 user", 1), ("100 users", 100)):
                steady = _time(lambda: store.get_features(pick(users), as_of=END), args.requests)
                results.append((f"get_features, {label}, window known complete", steady))
            # Every call a window never read before: the completeness count runs each time.
            fresh = iter(END - timedelta(minutes=n) for n in range(1, args.hours * 60))
            first_reads = _time(lambda: store.get_features(pick(1), as_of=next(fresh), groups=["user_activity_5m"]),
                                min(args.requests, args.hours * 60 - 2))
            results.append(("get_features, 1 user, 5m group, first read of a window", first_reads))
            fresh_rows = _fill_fresh(settings.postgres.conninfo(), store, args.users)
            for label, users in (("1 user", 1), ("100 users", 100)):
                window = _time(lambda: store.get_features(pick(users), as_of=END, groups=[FRESH_GROUP]), args.requests)
                results.append((f"get_features, {label}, 5m group, window known complete", window))
                fresh_reads = _time(lambda: store.get_features(pick(users), groups=[FRESH_GROUP], fresh=True),
                                    args.requests)
                results.append((f"get_features(fresh=True), {label}, 5m group", fresh_reads))
        with psycopg.connect(**settings.postgres.conninfo()) as connection:
            naive = _time(lambda: connection.execute(
                "SELECT * FROM user_activity_5m WHERE user_id = %s ORDER BY window_end DESC LIMIT 1", pick(1)).fetchall(),
                args.requests)
            results.append(("naive latest row, 1 user, 5m group (wrong answer: stale)", naive))
    lines = [
        "## Online read latency (jobs.reads.serving, PostgreSQL on loopback)",
        "",
        f"{rows:,} feature rows ({args.users:,} users, a fifth active per window, {args.hours} h of 1-minute "
        f"windows + hourly), filled in {fill_seconds:.0f} s; {fresh_rows:,} fresh slice rows (5 slices × 2 "
        f"versions per user); {args.requests:,} calls per line, one thread.",
        "",
        "| Read | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, samples in results:
        p50, p95, p99 = (percentile(samples, share) for share in (0.50, 0.95, 0.99))
        lines.append(f"| {label} | {p50:.2f} | {p95:.2f} | {p99:.2f} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    print(report(parser.parse_args()))


if __name__ == "__main__":
    main()
