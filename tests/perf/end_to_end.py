"""End to end through the real Kinesis endpoint into real PostgreSQL (and S3 Parquet for the job):
the job as its own process, against two Python baselines on the same events.

Four parts, each consumer alone on the machine while it is measured:
1. External bounds, no consumer running: PutRecords (the backlog below, one client, 500 a call),
   GetRecords (reading that backlog back), batched upserts of feature rows (plain psycopg).
2. Catch-up: a backlog of events dated just before a past hour (plus one later "flush" event that
   closes every window of theirs) is read from the start of the stream by the job, then by the
   windowed baseline; events/s = backlog / (time every window row of the probe users is visible in
   PostgreSQL - the job reaching RUNNING or the baseline's first GetRecords). Every row count and
   the probe users' values are compared with tests/oracle.py. The per-event baseline reads the same
   backlog for a time budget and reports the events it committed per second.
3. Live: each consumer on its own fresh stream while events dated "now" are sent at a steady
   rate (default: half the job's steady catch-up rate, at most half of PutRecords' own; a
   baseline slower than that gets 80% of its own catch-up rate).
   Freshness of a probe user's event (one user in 50) = first sight of its first window's row in
   PostgreSQL (polled every 150 ms) - PutRecords' acknowledgement. Per-event upserts write a row
   at once (partial until the window ends), so there it is the event's own commit time instead.
   For the job, also the freshness of fresh reads: the first poll (every 150 ms) whose served
   version of the event's slice in user_activity_5m__fresh counts it (tests/perf/freshness.py).
   The job runs live twice, with fresh slices (shipped) and without (interval 0); each run counts
   the rows PostgreSQL took into the feature tables per second during the measured span.
4. Both sinks: the job's committed Parquet rows in S3 at the end of its live run.

Each part names its own streams, buckets and databases (``perf-*``), never a test's or the demo's.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import psycopg
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from deploy.local import aws, aws_endpoint
from deploy.local import config as local_config
from deploy.local import job as local_job
from deploy.local import postgres, process, resources, services
from deploy.local.state import DEFAULT_STATE
from jobs import feature_job
from jobs.definitions import fresh_slices
from jobs.definitions.config import Config
from jobs.definitions.config import load as load_job_config
from jobs.definitions.schema import PROGRESS_TABLE
from tests import oracle
from tests.integration.stack import ROOT, JobProcess, clean_env
from tests.perf import bounds, cpu, feed
from tests.perf.baseline_features import parse
from tests.perf.events import generate
from tests.perf.freshness import (Freshness, FreshWatcher, RowWatcher, first_window_end_ms, fresh_keys, from_commits,
                                  from_fresh, from_rows, percentile)
from tests.sql.test_backfill_oracle import assert_matches

log = logging.getLogger(__name__)

BACKLOG_EVENTS_PER_SECOND = 2000.0  # event-time density of the backlog (rows per window like a live feed's)
SEED = 7
JOB_START_TIMEOUT_S = 180.0
SLIDE_S = 60  # user_activity_5m's slide: an event's first window ends within a minute of it
FLUSH_USER = "perf-flush"
SYNC_SUFFIX = "-sync"  # a baseline whose commits wait for the WAL flush, as on RDS
JOB_WITHOUT_FRESH = "job-without-fresh"  # the job with features.fresh.interval.seconds = 0
JOB_DESIGNS = ("job", JOB_WITHOUT_FRESH)
FRESH_TARGET_MARGIN_S = 2  # the target for fresh reads: p99 <= the interval + 2 s


@dataclass(frozen=True)
class Options:
    scratch: Path
    endpoint_port: int = 4577  # the bench's own emulator: its load and streams never meet the tests' or the demo's
    backlog_events: int = 200_000
    rate: float | None = None  # live events/s; None: see _live_rate
    warmup_s: float = 20.0
    # Whole minutes: an event's wait for its first window depends on its offset within the minute,
    # so a span of whole minutes weighs every offset equally.
    measure_s: float = 60.0
    per_event_budget_s: float = 60.0
    delay_s: int = 5
    users: int = 100_000
    duplicate_share: float = 0.10
    pg_bound_rows: int = 200_000
    live_designs: tuple[str, ...] = ("job", JOB_WITHOUT_FRESH, "windowed", "per-event")

    @property
    def tail_s(self) -> float:
        """Sending goes on this long after the measured span, so its last windows close. The span
        starts on a whole minute and its events are dated before they are sent, so each one's first
        window ends at the first whole minute from the span's end at the latest (its end itself
        when measure_s is whole minutes); the watermark passes that once events dated the watermark
        delay later have arrived, plus a margin for the events' disorder (up to 1 s) and the sinks'
        flush (rds.flush.interval.ms, 1 s)."""
        return -self.measure_s % SLIDE_S + self.delay_s + 8.0


@dataclass(frozen=True)
class Bounds:
    put_records: int
    put_seconds: float
    get_records: int
    get_seconds: float
    upsert_rows_per_s: float
    upsert_sync_rows_per_s: float  # the same with synchronous_commit on (RDS's default)


@dataclass(frozen=True)
class Drain:
    design: str
    events: int
    seconds: float | None  # None: did not finish
    equals_oracle: str  # "yes", "no: ...", or why it was not checked
    # After the first window's rows appeared (start-up excluded): the records read since, and seconds.
    steady: tuple[int, float] | None = None
    # CPU seconds from the start of reading to the last row, per process: the consumer (the job's
    # driver and JVM), the Kinesis + S3 endpoint, PostgreSQL (see tests/perf/cpu.py).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.seconds else None

    @property
    def steady_rate(self) -> float | None:
        return self.steady[0] / self.steady[1] if self.steady and self.steady[1] > 0 else None


@dataclass(frozen=True)
class Live:
    design: str
    rate: float
    sent: int
    feed_behind_s: float
    freshness: Freshness
    measured_by: str
    sinks: str = ""  # the job: what reached PostgreSQL and S3
    fresh_interval_s: int = 0  # the job's features.fresh.interval.seconds (0: no fresh slices)
    fresh: Freshness | None = None  # freshness of fresh reads, when the run has fresh slices
    # Rows PostgreSQL inserted or updated per second in each feature table during the measured span.
    rows_written_per_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    options: Options
    rate: float = 0.0
    bounds: Bounds | None = None
    drains: dict[str, Drain] = field(default_factory=dict)
    lives: dict[str, Live] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_at_start: tuple[float, float, float] = (0.0, 0.0, 0.0)


# --- configs and services -------------------------------------------------------------------------

def bench_config(options: Options, name: str, stream: str, fresh_off: bool = False) -> Path:
    """The shipped local config with this part's stream, bucket, database and checkpoint folder,
    the bench's endpoint, reading from the start of the stream, and the bench's watermark delay;
    ``fresh_off``: without fresh slices (features.fresh.interval.seconds = 0)."""
    groups = json.loads(local_config.DEFAULT_CONFIG.read_text())
    folder = options.scratch / name
    folder.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://127.0.0.1:{options.endpoint_port}"
    overrides = {
        "job": {"checkpoint.dir": (folder / "checkpoints").as_uri()},
        "source": {"stream.arn": f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}",
                   "shard.count": "1", "init.position": "TRIM_HORIZON", "aws.endpoint": endpoint},
        "events": {"watermark.delay.seconds": str(options.delay_s)},
        "output": {"path": f"s3://{name}/features", "s3.endpoint": endpoint},
    }
    if fresh_off:
        overrides["features"] = {"fresh.interval.seconds": "0"}
    for group_id in overrides.keys() - {group["PropertyGroupId"] for group in groups}:
        groups.append({"PropertyGroupId": group_id, "PropertyMap": {}})  # the shipped file leaves it to defaults
    for group in groups:
        group["PropertyMap"].update(overrides.get(group["PropertyGroupId"], {}))
        if group["PropertyGroupId"] == "rds":
            url = group["PropertyMap"]["jdbc.url"]
            group["PropertyMap"]["jdbc.url"] = url.rsplit("/", 1)[0] + "/" + name.replace("-", "_")
    path = folder / "config.json"
    path.write_text(json.dumps(groups, indent=2))
    return path


def prepare(config: Path, *, new_stream: bool) -> local_config.LocalSettings:
    """Services up (started if down); this part's database migrated and empty, bucket empty,
    checkpoints gone; the stream recreated if asked (the shared backlog stream is kept)."""
    settings = local_config.load(config)
    services.up(settings, DEFAULT_STATE)
    if new_stream:
        resources.recreate_stream(aws.kinesis(settings), settings.stream_name, settings.shard_count)
    resources.empty_bucket(aws.s3(settings), settings.bucket)
    if settings.checkpoint_dir and settings.checkpoint_dir.is_dir():
        shutil.rmtree(settings.checkpoint_dir)
    # In this process, as the serving section does: after the first, a migrate takes ~1 s, not
    # the ~10 s of a new JVM, and a live run's start then fits before its span's whole minute.
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        if feature_job.main(["migrate", "--config", str(config)]) != 0:
            raise RuntimeError(f"migrate failed for {config}:\n{printed.getvalue()[-2000:]}")
    postgres.truncate_public_tables(settings.postgres)
    return settings


# --- consumers as processes -----------------------------------------------------------------------

class Consumer:
    """The job (``python -m jobs.feature_job run``) or a baseline, in its own process group."""

    def __init__(self, design: str, config: Path, folder: Path, extra: Sequence[str] = ()) -> None:
        self.design, self.config = design, config
        self.log = folder / f"{design}.log"
        self.stats_file = folder / f"{design}-stats.json"
        self.extra = list(extra)
        self.job: JobProcess | None = None
        self.baseline: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait until it reads; returns that wall time."""
        if self.design in JOB_DESIGNS:
            self.job = JobProcess(self.config, self.log, env={"FLINK_LOG_DIR": str(self.log.parent / "flink")}).start()
            assert self.job.process is not None
            running = local_job.RunningJob(self.job.process.pid, ours=True, log_file=self.log)
            local_job.wait_until_running(running, JOB_START_TIMEOUT_S)
            return time.time()
        self.stats_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.perf.baselines", self.design.removesuffix(SYNC_SUFFIX),
                "--config", str(self.config), "--stats", str(self.stats_file), *self.extra]
        with self.log.open("ab") as out:
            self.baseline = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        return time.time()

    def pid(self) -> int | None:
        """The process that leads its session (tests/integration/stack.py and here start both so)."""
        running = self.job.process if self.job else self.baseline
        return running.pid if running else None

    def check_alive(self) -> None:
        if self.job:
            self.job.check_alive()
        elif self.baseline and self.baseline.poll() not in (None, 0):
            raise RuntimeError(f"baseline {self.design} exited with {self.baseline.returncode}; log {self.log}")

    def running(self) -> bool:
        return bool(self.baseline and self.baseline.poll() is None)

    def stop(self) -> None:
        if self.job:
            self.job.stop()
        if self.baseline and self.baseline.poll() is None:
            process.stop(self.baseline.pid, timeout=30, group=True)

    def stats(self) -> dict[str, Any]:
        if not self.stats_file.is_file():
            raise RuntimeError(f"baseline {self.design} wrote no figures; see {self.log}")
        return json.loads(self.stats_file.read_text())


def _wait(what: str, done: Callable[[], bool], consumer: Consumer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer.check_alive()
        if done():
            return True
        time.sleep(0.5)
    log.warning("gave up waiting for %s after %.0f s", what, timeout)
    return False


# --- the backlog ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backlog:
    stream: str
    lines: list[str]
    times_ms: list[int]  # running maximum of the event times, in stream order
    expected_5m: dict[tuple, dict]
    expected_1h: dict[tuple, dict]

    @property
    def records(self) -> int:
        return len(self.lines) + 1  # and the flush event


def _backlog_lines(options: Options) -> tuple[list[str], str]:
    """Events dated before a past hour H, starting 1 s before a minute (so a first window closes
    early and the steady rate after it can be seen), and a flush event at H + 5 min + delay + 1 s,
    which closes every window holding them (the hour too) yet is not in the future."""
    now = datetime.now(timezone.utc)
    hour = (now - timedelta(minutes=6, seconds=options.delay_s + 30)).replace(minute=0, second=0, microsecond=0)
    span = timedelta(seconds=options.backlog_events / BACKLOG_EVENTS_PER_SECOND)
    start = (hour - timedelta(seconds=10) - span).replace(second=0, microsecond=0) - timedelta(seconds=1)
    lines = list(generate(options.backlog_events, users=options.users, duplicate_share=options.duplicate_share,
                          seed=SEED, start=start, events_per_second=BACKLOG_EVENTS_PER_SECOND,
                          max_disorder_seconds=1.0))
    flush_time = hour + timedelta(minutes=5, seconds=options.delay_s + 1)
    flush = json.dumps({"txid": "perf-flush", "user_id": FLUSH_USER, "event_type": "Z",
                        "event_time": flush_time.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    return lines, flush


def load_backlog(options: Options, result: Result) -> Backlog:
    config = bench_config(options, "perf-backlog", "perf-backlog")
    settings = prepare(config, new_stream=True)
    lines, flush = _backlog_lines(options)
    entries = feed.records(lines + [flush])
    log.info("putting %d backlog records as fast as PutRecords takes them", len(entries))
    put_seconds = feed.put_all(aws.kinesis(settings), settings.stream_name, entries)
    log.info("reading them back with plain GetRecords")
    got, get_seconds = bounds.get_records_rate(aws.kinesis(settings), settings.stream_name, len(entries))
    log.info("batched upserts of %d feature rows with plain psycopg", options.pg_bound_rows)
    conninfo = settings.postgres.conninfo()
    upserts = bounds.upsert_rate(conninfo, options.pg_bound_rows, options.users)
    upserts_sync = bounds.upsert_rate(conninfo, options.pg_bound_rows, options.users, synchronous_commit=True)
    result.bounds = Bounds(len(entries), put_seconds, got, get_seconds, upserts, upserts_sync)
    log.info("the oracle's rows for the backlog")
    outcome = oracle.replay(lines, datetime.now(timezone.utc), timedelta(seconds=options.delay_s))
    newest = list(itertools.accumulate((event.time_ms for event in map(parse, lines) if event), max))
    return Backlog(settings.stream_name, lines, newest, oracle.user_activity_5m(outcome), oracle.user_activity_1h(outcome))


# --- catch-up -------------------------------------------------------------------------------------

def _probe_keys(expected: dict[tuple, dict]) -> set[tuple[str, int]]:
    return {(user, int(end.replace(tzinfo=timezone.utc).timestamp() * 1000))
            for user, _, end in expected if feed.is_probe(user)}


def _check(settings: local_config.LocalSettings, backlog: Backlog, exclude_user: str = "") -> str:
    """Row counts of both tables, and every value of the probe users' rows, against the oracle."""
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        for table, expected in (("user_activity_5m", backlog.expected_5m), ("user_activity_1h", backlog.expected_1h)):
            count = connection.execute(f"SELECT count(*) FROM {table} WHERE user_id <> %s", (exclude_user,)).fetchone()[0]
            if count != len(expected):
                return f"no: {table} has {count:,} rows, the oracle {len(expected):,}"
            users = sorted({user for user, _, _ in expected if feed.is_probe(user)})
            cursor = connection.execute(f"SELECT * FROM {table} WHERE user_id = ANY(%s)", (users,))
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
            try:
                assert_matches(rows, {key: values for key, values in expected.items() if feed.is_probe(key[0])})
            except AssertionError as exc:
                return f"no: {table}: {str(exc)[:200]}"
    return "yes (row counts; every value of the probe users' rows)"


def drain(options: Options, backlog: Backlog, design: str) -> Drain:
    name = f"perf-backlog-{design}"
    config = bench_config(options, name, backlog.stream)
    settings = prepare(config, new_stream=False)
    folder = config.parent
    if design.startswith("per-event"):
        budget = options.per_event_budget_s if design == "per-event" else max(10.0, options.per_event_budget_s / 3)
        sync = ["--synchronous-commit"] if design.endswith(SYNC_SUFFIX) else []
        consumer = Consumer(design, config, folder, ["--seconds", str(budget), *sync])
        try:
            consumer.start()
            _wait("the per-event budget", lambda: not consumer.running(), consumer, budget + 60)
        finally:
            consumer.stop()
        stats = consumer.stats()
        seconds = (stats["last_commit"] or 0) - (stats["first_read"] or 0)
        # Rows are visible per event, so the flush event has rows too; the others' are still open.
        checked = (_check(settings, backlog, exclude_user=FLUSH_USER) if stats["records"] == backlog.records
                   else "not checked: the budget ended mid-backlog (tests/perf/test_baselines.py checks it)")
        return Drain(design, stats["records"], seconds or None, checked)
    conninfo = settings.postgres.conninfo()
    watchers = [RowWatcher(conninfo, {u for u, _ in keys}, keys, table)
                for table, keys in (("user_activity_5m", _probe_keys(backlog.expected_5m)),
                                    ("user_activity_1h", _probe_keys(backlog.expected_1h)))]
    for watcher in watchers:
        watcher.start()
    consumer = Consumer(design, config, folder, ["--delay-seconds", str(options.delay_s)])
    try:
        started = consumer.start()
        sessions = _sessions(settings, consumer)
        cpu_before = {name: cpu.session_cpu_seconds(session) for name, session in sessions.items()}
        finished = _wait("every backlog window in PostgreSQL", lambda: not any(w.waiting for w in watchers),
                         consumer, 120 + backlog.records / 1000)
        used = {name: cpu.session_cpu_seconds(session) - cpu_before[name] for name, session in sessions.items()}
    finally:
        consumer.stop()
        for watcher in watchers:
            watcher.stop()
    for watcher in watchers:
        if watcher.error:
            raise watcher.error
    if design != "job":
        started = consumer.stats()["first_read"] or started
    if not finished:
        return Drain(design, backlog.records, None, "not checked (did not finish)")
    done = max(t for w in watchers for t in w.first_seen.values())
    # The first window closed once a record past its end + delay was read: what came before it
    # was read during start-up, the rest at the steady rate.
    first_end = min(end for user, end in watchers[0].first_seen)
    first_seen = min(t for (user, end), t in watchers[0].first_seen.items() if end == first_end)
    read_before = bisect.bisect_left(backlog.times_ms, first_end + options.delay_s * 1000 - 1)
    steady = (backlog.records - read_before, done - first_seen) if done - first_seen >= 1 else None
    return Drain(design, backlog.records, done - started, _check(settings, backlog), steady, used)


def _sessions(settings: local_config.LocalSettings, consumer: Consumer) -> dict[str, int]:
    """The session of each process whose CPU a catch-up is charged with (those found)."""
    leaders = {"consumer": consumer.pid(),
               "endpoint": next((e.pid for e in aws_endpoint.status(settings, DEFAULT_STATE) if e.kind == "emulator"), None),
               "postgres": postgres.Server(DEFAULT_STATE, settings.postgres).our_pid()}
    sessions = {name: cpu.session_of(pid) for name, pid in leaders.items() if pid}
    return {name: session for name, session in sessions.items() if session}


# --- live -----------------------------------------------------------------------------------------

def _parquet_rows(settings: local_config.LocalSettings, folder: str) -> int:
    endpoint = settings.s3_endpoint or ""
    filesystem = pafs.S3FileSystem(access_key="test", secret_key="test", region=settings.region,
                                   endpoint_override=endpoint.split("://", 1)[-1], scheme=endpoint.split("://", 1)[0])
    path = f"{settings.bucket}/{settings.prefix}/{folder}"
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return 0
    return ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive").count_rows()


def _sinks(settings: local_config.LocalSettings) -> str:
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        pg = connection.execute("SELECT count(*) FROM user_activity_5m").fetchone()[0]
    return f"user_activity_5m: {pg:,} rows in PostgreSQL, {_parquet_rows(settings, 'user_activity_5m'):,} in S3 Parquet"


def _feature_tables(config: Config) -> list[str]:
    """The PostgreSQL tables the job writes features into: each group's, its fresh slices', the markers."""
    plans = fresh_slices.load_plans(ROOT / "sql", config)
    fresh = [plan.table for plan in plans.values() if isinstance(plan, fresh_slices.FreshSpec)]
    return [*plans, *fresh, PROGRESS_TABLE]


def _rows_written(settings: local_config.LocalSettings, tables: Sequence[str]) -> dict[str, int]:
    """Rows inserted + updated so far in each of ``tables`` that exists (PostgreSQL's statistics,
    which each connection reports at most once a second, when it goes idle)."""
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        rows = connection.execute("SELECT relname, n_tup_ins + n_tup_upd FROM pg_stat_user_tables "
                                  "WHERE relname = ANY(%s)", (list(tables),)).fetchall()
    return dict(rows)


def _live_events(options: Options, total: int,
                 rate: float) -> tuple[list[dict[str, Any]], list[feed.Probe], dict[int, tuple], float]:
    """The feed's records, its measured probe events and the fresh-read keys of those
    (tests/perf/freshness.py fresh_keys), dated from a start a few seconds ahead.

    Keys and probes come from a first draw at a fixed start (the same parameters give the same
    users and txids whatever the start), so only the cheap second draw waits on the clock."""
    def draw(start: float) -> list[str]:
        return list(generate(total, users=options.users, duplicate_share=options.duplicate_share, seed=SEED,
                             start=feed.utc(start), events_per_second=rate, max_disorder_seconds=1.0))

    template = feed.records(draw(0.0))
    keys = [entry["PartitionKey"] for entry in template]
    probe_indexes = [p.index for p in feed.probes([entry["Data"].decode() for entry in template])]
    del template
    earliest = time.time() + 2 + total / 500_000  # drawing takes ~1 s per 500k lines here
    # The measured span starts on a whole minute, so it holds the same window emissions (one a
    # minute) in every run and the runs' PostgreSQL writes compare.
    start_at = math.ceil((earliest + options.warmup_s) / SLIDE_S) * SLIDE_S - options.warmup_s
    lines = draw(start_at)
    entries = [{"Data": line.encode(), "PartitionKey": key} for line, key in zip(lines, keys, strict=True)]
    measured = range(int(rate * options.warmup_s), int(rate * (options.warmup_s + options.measure_s)))
    every_probe = feed.probes_at(lines, probe_indexes)
    return entries, [p for p in every_probe if p.index in measured], fresh_keys(every_probe), start_at


def _until(moment: float, consumer: Consumer) -> None:
    _wait(f"{moment - time.time():.0f} s to pass", lambda: time.time() >= moment, consumer, moment - time.time() + 5)


def live(options: Options, design: str, rate: float) -> Live:
    name = f"perf-live-{design}"
    config = bench_config(options, name, name, fresh_off=design == JOB_WITHOUT_FRESH)
    settings = prepare(config, new_stream=True)
    job_config = load_job_config(config, "run")
    tables = _feature_tables(job_config)
    fresh_interval = fresh_slices.interval_seconds(job_config) if design in JOB_DESIGNS else 0
    extra = ["--delay-seconds", str(options.delay_s)] if design == "windowed" else []
    consumer = Consumer(design, config, config.parent, extra)
    total = int(rate * (options.warmup_s + options.measure_s + options.tail_s))
    watcher: RowWatcher | None = None
    fresh_watcher: FreshWatcher | None = None
    live_feed: feed.LiveFeed | None = None
    conninfo = settings.postgres.conninfo()
    try:
        consumer.start()
        entries, probes, keys, start_at = _live_events(options, total, rate)
        if design != "per-event":
            wanted = {(p.user_id, first_window_end_ms(p.time_ms)) for p in probes}
            watcher = RowWatcher(conninfo, {u for u, _ in wanted}, wanted)
            watcher.start()
        if fresh_interval:
            fresh_watcher = FreshWatcher(conninfo, (keys[p.index] for p in probes))
            fresh_watcher.start()
        live_feed = feed.LiveFeed(aws.kinesis(settings), settings.stream_name, entries, rate, start_at)
        live_feed.start()
        log.info("%s: sending %d events at %.0f/s for %.0f s", design, total, rate, total / rate)
        # The rows PostgreSQL took during the measured span (the probe events' span).
        _until(start_at + options.warmup_s, consumer)
        before = _rows_written(settings, tables)
        _until(start_at + options.warmup_s + options.measure_s, consumer)
        after = _rows_written(settings, tables)
        written = {table: (after[table] - before.get(table, 0)) / options.measure_s for table in tables if table in after}
        _wait("the live feed", lambda: not live_feed.is_alive(), consumer, total / rate + 120)
        if live_feed.error:
            raise live_feed.error
        watchers = [w for w in (watcher, fresh_watcher) if w]
        if watchers:
            _wait("the last measured windows", lambda: not any(w.waiting for w in watchers), consumer, 20)
        else:
            time.sleep(10)  # per-event: let it finish what it has read
    finally:
        if live_feed:
            live_feed.stop()
        for running in (watcher, fresh_watcher):
            if running:
                running.stop()
        consumer.stop()
    for stopped in (watcher, fresh_watcher):
        if stopped and stopped.error:
            raise stopped.error
    if watcher:
        freshness = from_rows(probes, live_feed.acked, watcher.first_seen, options.delay_s)
        how = "first sight of the row in PostgreSQL"
    else:
        freshness = from_commits(probes, live_feed.acked, consumer.stats()["probe_commits"])
        how = "commit of the event's own transaction"
    fresh = from_fresh(probes, live_feed.acked, fresh_watcher.first_seen, keys) if fresh_watcher else None
    return Live(design, rate, live_feed.sent, live_feed.behind_s, freshness, how,
                _sinks(settings) if design == "job" else "", fresh_interval, fresh, written)


# --- the whole section ----------------------------------------------------------------------------

def _own_endpoint(options: Options) -> Callable[[], None]:
    """Start the bench's emulator if nothing answers on its port (deploy/local's own helper);
    returns what stops it again, and only if this run started it."""
    settings = local_config.load(bench_config(options, "perf-backlog", "perf-backlog"))
    was_down = all(e.kind == "down" for e in aws_endpoint.status(settings, DEFAULT_STATE))
    statuses = aws_endpoint.ensure(settings, DEFAULT_STATE)

    def stop() -> None:
        for status in statuses:
            if was_down and status.kind == "emulator" and status.pid:
                process.stop(status.pid)
                log.info("stopped the bench's emulator (pid %d)", status.pid)

    return stop


def _live_rate(options: Options, result: Result, design: str) -> float:
    """The job: half its catch-up rate after its first window (headroom for the minute's window
    burst and checkpoints),
    at most half of PutRecords' own. A baseline: the same, or 80% of its own catch-up rate if
    that is lower: fed faster than it can go, its lag would only grow."""
    assert result.bounds is not None
    if options.rate:
        rate = options.rate
    else:
        job = result.drains["job"].steady_rate or result.drains["job"].rate or 1000.0
        rate = max(100.0, round(min(job / 2, result.bounds.put_records / result.bounds.put_seconds / 2), -2))
    result.rate = result.rate or rate
    if design in JOB_DESIGNS:
        return rate
    own = result.drains[design].rate
    if own and own * 0.8 < rate:
        slower = max(10.0, round(own * 0.8, -1))
        result.notes.append(f"{design} was fed live at {slower:,.0f} events/s (80% of its catch-up rate), "
                            f"not {rate:,.0f}: fed faster, its lag would only grow")
        return slower
    return rate


def run(options: Options) -> Result:
    result = Result(options, load_at_start=os.getloadavg())
    stop_endpoint = _own_endpoint(options)
    try:
        backlog = load_backlog(options, result)
        for design in ("job", "windowed", "per-event", "per-event" + SYNC_SUFFIX):
            log.info("catch-up: %s", design)
            result.drains[design] = drain(options, backlog, design)
        for design in options.live_designs:
            rate = _live_rate(options, result, design)
            log.info("live: %s at %.0f events/s", design, rate)
            result.lives[design] = live(options, design, rate)
    finally:
        stop_endpoint()
    return result


# --- the report section ---------------------------------------------------------------------------

def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value else "—"


def _ratio(job: float | None, other: float | None) -> str:
    return f"{job / other:,.1f}×" if job and other else "—"


def _cpu_table(result: Result) -> list[str]:
    """Where the catch-up's CPU went, per process, for the designs that were measured so."""
    measured = {design: d for design, d in result.drains.items() if d.cpu and d.seconds}
    if not measured:
        return []
    parts = (("consumer", "consumer (job: driver + JVM)"), ("endpoint", "Kinesis + S3 endpoint"), ("postgres", "PostgreSQL"))
    lines = ["#### Where the catch-up's CPU went (CPU seconds from the start of reading to the last row)", "",
             "| Design | " + " | ".join(title for _, title in parts) + " | Total | CPU ms per 1,000 events | "
             "Cores busy (of 2) |", "| --- |" + " --- |" * (len(parts) + 3)]
    for design, d in measured.items():
        total = sum(d.cpu.values())
        cells = " | ".join(f"{d.cpu[name]:,.1f}" if name in d.cpu else "—" for name, _ in parts)
        lines.append(f"| {design} | {cells} | {total:,.1f} | {1e6 * total / d.events:,.0f} | {total / d.seconds:.2f} |")
    lines += ["", "Read from /proc for each process's session (tests/perf/cpu.py): the job's figure includes its "
              "checkpoints and every output (Parquet features, raw archive, quarantine, late, progress markers), "
              "the endpoint's includes serving those S3 writes.", ""]
    return lines


def _freshness_row(label: str, rate: float, sent: int, behind_s: float, f: Freshness, measured_by: str) -> str:
    spread = " / ".join(f"{f.percentile(q):.1f}" for q in (0.5, 0.95, 0.99, 1.0))
    after = " / ".join(f"{percentile(f.after_close, q):.1f}" for q in (0.5, 0.99)) if f.after_close else "—"
    return (f"| {label} | {rate:,.0f} | {sent:,} | {behind_s:.1f} s | {len(f.samples):,} | {spread} | {after} | "
            f"{f.unseen:,} | {measured_by} |")


def _writes_table(result: Result) -> list[str]:
    """PostgreSQL rows written per second in the measured span, per live run and feature table."""
    tables = list(dict.fromkeys(table for live_run in result.lives.values() for table in live_run.rows_written_per_s))
    if not tables:
        return []
    lines = [f"#### PostgreSQL rows written per second during the measured {result.options.measure_s:.0f} s "
             "(inserted + updated, pg_stat_user_tables)", "",
             "| Design | " + " | ".join(tables) + " | Total | Rows per event sent |",
             "| --- |" + " ---: |" * (len(tables) + 2)]
    for design, live_run in result.lives.items():
        written = live_run.rows_written_per_s
        cells = " | ".join(f"{written[table]:,.1f}" if table in written else "—" for table in tables)
        total = sum(written.values())
        lines.append(f"| {design} | {cells} | {total:,.1f} | {total / live_run.rate:.2f} |")
    lines += ["", f"{JOB_WITHOUT_FRESH} = the job with features.fresh.interval.seconds = 0 (no fresh slices), fed "
              "like the job. The span starts on a whole minute in every run, so it holds the same window emissions "
              "(the 5-minute table's rows come in one burst a minute, the hour's once an hour; fresh slices every "
              "interval). The per-event design's own dedup tables are not counted. PostgreSQL's statistics arrive "
              "up to a second late (10 s from an idle connection): a span of the same length, shifted.", ""]
    return lines


def section(result: Result) -> str:
    o = result.options
    b = result.bounds
    target_s = SLIDE_S + o.delay_s + 3
    lines = [
        "## End to end: Kinesis endpoint → job → PostgreSQL + S3 Parquet, against two baselines",
        "",
        f"One shard, parallelism 1, {o.users:,} users, {o.duplicate_share:.0%} re-sends, watermark delay "
        f"**{o.delay_s} s** (lowered from the shipped 30 s for this run: live events arrive within 1 s of their "
        "time), checkpoints every 10 s (shipped). Baselines: *windowed* = one Python consumer with dicts and "
        "batched upserts; *per-event* = one transaction per event (txid insert, five HOP and one hour "
        "upsert-increments), the Lambda → RDS design. Only the job also writes S3 Parquet. Load average when "
        f"this section started: {' / '.join(f'{x:.2f}' for x in result.load_at_start)} (1 / 5 / 15 min).",
        "",
    ]
    if b:
        lines += [
            "### External bounds (no consumer running)",
            "",
            "| Service | Operation | Rate |",
            "| --- | --- | --- |",
            f"| Kinesis endpoint | PutRecords, 500 a call, one client ({b.put_records:,} records) | "
            f"{b.put_records / b.put_seconds:,.0f} records/s |",
            f"| Kinesis endpoint | GetRecords, 10,000 a call, one shard ({b.get_records:,} records) | "
            f"{b.get_records / b.get_seconds:,.0f} records/s |",
            f"| PostgreSQL | upserts of feature rows, 500 a batch, a commit per batch ({o.pg_bound_rows:,} rows) | "
            f"{b.upsert_rows_per_s:,.0f} rows/s |",
            f"| PostgreSQL | the same, each commit waiting for the WAL flush (synchronous_commit on, RDS's default) | "
            f"{b.upsert_sync_rows_per_s:,.0f} rows/s |",
            "",
        ]
    job_drain = result.drains.get("job")
    if result.drains:
        lines += [
            f"### Catch-up: a backlog of {o.backlog_events:,} events (+1 flush event) read from the stream's start",
            "",
            "| Design | Records | Seconds | Events/s | Events/s after the first window | Job ÷ design "
            "| Output equals the oracle |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for design, d in result.drains.items():
            seconds = f"{d.seconds:,.1f}" if d.seconds else "did not finish"
            ratio = "" if design == "job" else _ratio(job_drain.rate if job_drain else None, d.rate)
            lines.append(f"| {design} | {d.events:,} | {seconds} | {_rate(d.rate)} | {_rate(d.steady_rate)} | {ratio} "
                         f"| {d.equals_oracle} |")
        lines += ["", "Events/s: records ÷ the time from the job reaching RUNNING (its sources start then) or a "
                  "baseline's first GetRecords to the moment the last window row of the probe users is visible. "
                  "After the first window: the records read after the first window closed ÷ the time from its rows "
                  "appearing to the end (start-up left out; rows are written at window ends, so per-event upserts, "
                  f"which write as they go, have none). Per-event upserts ran on a {o.per_event_budget_s:.0f} s budget, "
                  f"{'per-event' + SYNC_SUFFIX} (synchronous_commit on) on a third of it.",
                  ""]
        lines += _cpu_table(result)
    if result.lives:
        lines += [
            f"### Live: events dated now, sent at a steady rate for {o.warmup_s + o.measure_s + o.tail_s:.0f} s, "
            f"freshness of the probe users' events in the middle {o.measure_s:.0f} s",
            "",
            "| Design | Events/s sent | Events sent | Feed behind (max) | Probe events | Freshness p50 / p95 / p99 / max "
            "(s) | After the window could close p50 / p99 (s) | Not visible by the end | Measured as |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for design, live_run in result.lives.items():
            run = (live_run.rate, live_run.sent, live_run.feed_behind_s)
            label = f"{design}, window read" if live_run.fresh else design
            lines.append(_freshness_row(label, *run, live_run.freshness, live_run.measured_by))
            if live_run.fresh:
                lines.append(_freshness_row(
                    f"{design}, fresh read (slices every {live_run.fresh_interval_s} s)", *run, live_run.fresh,
                    "first poll whose served slice version (served_from ≤ poll) counts the event"))
        lines += ["", "Freshness = first sight - PutRecords' acknowledgement; it includes the wait for the event's first "
                  f"window to end (0-60 s, by its second within the minute) and the {o.delay_s} s watermark delay. "
                  "After the window could close = first sight - (window end + delay): the pipeline's own latency "
                  "(reading, the watermark, the minute's burst of rows through the JDBC sink). A fresh read sees an "
                  "event at the first poll (every 150 ms, as a serving client would) where the newest version of its "
                  "slice in user_activity_5m__fresh with served_from ≤ the poll's time counts at least the user's "
                  "events in that slice up to this one: no wait for a window, only for the next slice version "
                  "(interval + 1 s served_from delay).", ""]
        lines += _writes_table(result)
        job_live = result.lives.get("job")
        if job_live and job_live.sinks:
            lines += [f"Both sinks after the job's live run: {job_live.sinks} (Parquet commits on checkpoints).", ""]
    lines += ["### Targets", ""]
    job_live = result.lives.get("job")
    if job_live and job_live.freshness.samples:
        p99 = job_live.freshness.percentile(0.99)
        met = "met" if p99 <= target_s and not job_live.freshness.unseen else "NOT met"
        lines.append(f"- Freshness p99 ≤ slide + watermark delay + 3 s = {target_s} s: job p99 {p99:.1f} s — **{met}**.")
    if job_live and job_live.fresh and job_live.fresh.samples:
        fresh_target_s = job_live.fresh_interval_s + FRESH_TARGET_MARGIN_S
        p99 = job_live.fresh.percentile(0.99)
        met = "met" if p99 <= fresh_target_s and not job_live.fresh.unseen else "NOT met"
        lines.append(f"- Fresh reads p99 ≤ interval + {FRESH_TARGET_MARGIN_S} s = {fresh_target_s} s: job p99 "
                     f"{p99:.1f} s (window reads {job_live.freshness.percentile(0.99):.1f} s) — **{met}**.")
    without = result.lives.get(JOB_WITHOUT_FRESH)
    if job_live and without and job_live.rows_written_per_s and without.rows_written_per_s:
        with_rows, without_rows = sum(job_live.rows_written_per_s.values()), sum(without.rows_written_per_s.values())
        lines.append(f"- PostgreSQL rows written per second, live: {with_rows:,.0f} with fresh slices, "
                     f"{without_rows:,.0f} without ({_ratio(with_rows, without_rows)}).")
    per_event = result.drains.get("per-event")
    if job_drain and job_drain.rate and per_event and per_event.rate:
        ratio = job_drain.rate / per_event.rate
        steady = f" ({job_drain.steady_rate / per_event.rate:,.1f}× after the job's first window)" \
            if job_drain.steady_rate else ""
        lines.append(f"- Job ≥ 10× per-event upserts end to end (catch-up events/s): {ratio:,.1f}×{steady} — "
                     f"**{'met' if ratio >= 10 else 'NOT met'}**.")
    per_event_sync = result.drains.get("per-event" + SYNC_SUFFIX)
    if job_drain and job_drain.rate and per_event_sync and per_event_sync.rate:
        lines.append(f"- The same against per-event upserts whose commits wait for the WAL flush (RDS's default; "
                     f"the job commits once per 500 rows): {job_drain.rate / per_event_sync.rate:,.1f}×.")
    windowed = result.drains.get("windowed")
    if job_drain and job_drain.rate and windowed and windowed.rate:
        lines.append(f"- For reference, job ÷ windowed Python consumer: {job_drain.rate / windowed.rate:,.1f}×.")
    if job_live:
        kept_up = "kept up" if not job_live.freshness.unseen and job_live.feed_behind_s < 5 else "did NOT keep up"
        why = "--rate" if o.rate else "half its catch-up rate after the first window, at most half of PutRecords' rate"
        lines.append(f"- Live, the job {kept_up} with {job_live.rate:,.0f} events/s sent ({why}), writing both sinks.")
    lines += [f"- {note}" for note in result.notes]
    lines += ["", "What the comparison leaves out: the baselines write no S3 copy, raw archive, quarantine or late "
              "output, take no checkpoints and recover nothing after a crash (their dedup and windows live in one "
              "process's memory); the job does all of that on the same two cores. PostgreSQL here is on the same "
              "machine (round trip well under 1 ms): per-event upserts make four round trips per event (txid, HOP "
              "rows, hour row, commit), so over a network to RDS each event pays four network round trips, while "
              "the job's JDBC sink pays one per 500 rows."]
    return "\n".join(lines) + "\n"
