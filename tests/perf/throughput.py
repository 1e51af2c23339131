"""Throughput of the job's hot path against the machine's ceiling and a Python baseline, and state size.

    python -m tests.perf.throughput [--events 1000000] [--repeats 3]

Every variant runs in a JVM (a Python process) of its own, after a warm-up run of a third as many
events in that JVM; every variant runs ``--repeats`` times, the order rotated each round; the
report gives medians and the spread. The same generated events (tests/perf/events.py: 100k users,
10% re-sent txids) are split round-robin into one file per subtask, as Kinesis shards would be:
  * ceilings: rows made in the JVM (datagen), and the raw lines read 40 times over, into a
    blackhole (>= 10 s each here);
  * q5-shaped: Nexmark q5's window step (datagen -> HOP 10 s / 2 s count per key -> blackhole) on
    RocksDB, at Nexmark's pace and dense keys and at this job's pace and keys;
  * parse: sources/events_parsed.sql + views/events.sql, every column into a blackhole, with
    EVENT_FIELDS and with the parse it replaced (tests/perf/before/);
  * hot path: parse -> dedup -> both shipped features -> blackhole sinks with every feature
    column (the job's own SQL and settings, via jobs.streaming.pipeline.register_features), on the heap
    (hashmap) state backend (local) and RocksDB (what Managed Flink always uses), both parses;
  * whole job: jobs.streaming.pipeline.build with its Parquet outputs on local disk, no PostgreSQL, with
    and without fresh slices;
  * RocksDB levers: the RocksDB hot path with one setting changed;
  * the Python baseline: the shipped features in one Python thread (dicts, no I/O);
  * state: checkpointed bytes of the dedup (per txid) and window operators (per user).
events/s = input rows / the job's net runtime (from deployment to the end, no JVM start); events
per core-second = input rows / the JVM's CPU seconds over that runtime, its JIT compilers' left
out (Nexmark's throughput per core). tests/perf/profile.py shows where one variant's CPU goes.
Prints figures and asserts nothing; report(args) returns them as a Markdown section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pyflink.table import StatementSet, TableEnvironment

from jobs.definitions import config as job_config
from jobs.definitions.sql_catalog import Catalog, Statement, expand_like, load_catalog, render
from jobs.streaming import counters, environment, pipeline
from tests.perf import cpu
from tests.perf.baseline_features import WindowedFeatures
from tests.perf.baseline_features import parse as parse_event
from tests.perf.events import PERF_DIR, cached_events, distinct_txids

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
SQL_DIR = ROOT / "sql"
USERS = 100_000
PARALLELISM = 2
WARMUP_EVENTS = 300_000
STATE_EVENTS = 2_000_000  # window state is steady by then; dedup bytes per txid do not depend on it
FRESH_INTERVAL_S = 5  # features.fresh.interval.seconds, shipped; 0 turns fresh slices off

HEAP = {"state.backend.type": "hashmap"}
# The MiniCluster's default managed memory (128 MB for all slots) starves RocksDB: its write
# buffers flush constantly and compaction stalls writes (< 5k events/s here). 1 GB (512 MB per
# slot) is nearer what a Managed Flink KPU (1 vCPU, 4 GB) gives its slot.
ROCKSDB = {"state.backend.type": "rocksdb", "taskmanager.memory.managed.size": "1g"}
# The job's settings before the hot-path work (with the parse of tests/perf/before/).
BEFORE = {"pipeline.object-reuse": "false", "state.backend.rocksdb.use-bloom-filter": "false"}
Build = Callable[[], StatementSet]


@dataclass(frozen=True)
class Figure:
    """One measured variant."""

    name: str
    events: int
    seconds: float
    jvm_peak_rss_mb: float
    cpu_seconds: float  # process CPU time (user + system) over ``seconds``
    jit_cpu_seconds: float = 0.0  # of which the JIT compilers' (a new job's generated code is compiled afresh)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def per_core_second(self) -> float:
        """Events per second of one core busy, the JIT compilers left out: Nexmark's "throughput
        per core", which it takes over minutes of a running job, when compiling is long done."""
        return self.events / (self.cpu_seconds - self.jit_cpu_seconds)

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds


@dataclass(frozen=True)
class StateFigure:
    """Checkpointed state of one backend after every event went through, by operator."""

    backend: str
    dedup_bytes: int
    window_bytes: dict[str, int]
    txids: int
    users: int

    @property
    def bytes_per_txid(self) -> float:
        return self.dedup_bytes / self.txids


# --- input ---------------------------------------------------------------------------------

def _built_once(folder: Path, fill: Callable[[Path], None]) -> Path:
    """``folder``, filled by ``fill`` in a partial folder first if it does not exist yet, so a
    reader never sees half of it."""
    if not folder.is_dir():
        partial = folder.with_name(f".{folder.name}.{os.getpid()}")
        partial.mkdir(parents=True)
        fill(partial)
        partial.rename(folder)
    return folder


def input_path(events: int, parallelism: int) -> Path:
    """The events file, split round-robin into one file per subtask (a folder) when parallel."""
    source = cached_events(events, users=USERS)
    if parallelism == 1:
        return source

    def split(partial: Path) -> None:
        outs = [(partial / f"part-{i}.jsonl").open("w", encoding="utf-8") for i in range(parallelism)]
        with source.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                outs[number % parallelism].write(line)
        for out in outs:
            out.close()

    return _built_once(source.with_name(f"{source.stem}-split{parallelism}"), split)


def _copies(folder: Path, copies: int) -> Path:
    """A folder of links to the files of ``folder``, each ``copies`` times (no extra disk)."""
    if copies == 1:
        return folder

    def link(partial: Path) -> None:
        for copy in range(copies):
            for part in sorted(folder.iterdir()):
                (partial / f"{copy}-{part.name}").symlink_to(part.resolve())

    return _built_once(folder.with_name(f"{folder.name}-x{copies}"), link)


def _distinct_users(path: Path) -> int:
    users = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            users.add(line.split('"user_id": "', 1)[1].split('"', 1)[0])
    return len(users)


# --- the parse before EVENT_FIELDS ------------------------------------------------------------

BEFORE_DIR = Path(__file__).resolve().parent / "before"
BEFORE_FILES = ("events_parsed.sql", "events.sql")  # sources/ and views/: the only files it replaces


def parse_before(catalog: Catalog, config: job_config.Config) -> Catalog:
    """``catalog`` with the parse it had before EVENT_FIELDS (tests/perf/before/: JSON_VALUE per
    field, the time rule in SQL), everything else the same."""
    def before(statement: Statement) -> Statement:
        if statement.path.name not in BEFORE_FILES:
            return statement
        path = BEFORE_DIR / statement.path.name
        return Statement(path, 1, render(path.read_text(encoding="utf-8"), config, path))

    base = catalog.tables[0]
    return dataclasses.replace(catalog, functions=[], tables=[expand_like(before(s), base) for s in catalog.tables],
                               views=[before(s) for s in catalog.views])


# --- environment and runs ------------------------------------------------------------------

def _table_env(input_uri: str, parallelism: int, options: dict[str, str],
               fresh_interval_s: int = 0) -> tuple[TableEnvironment, job_config.Config]:
    """The job's own local environment with a live source's settings (periodic watermarks),
    checkpoints off unless ``options`` set them, then ``options``; fresh slices every
    ``fresh_interval_s`` (0: none) for what registers them."""
    config = job_config.load(CONFIG, "backfill").with_overrides({
        "job": {"checkpoint.dir": ""},
        "backfill": {"input.path": input_uri},
        "output": {"path": (PERF_DIR / "out").as_uri()},
        "features": {"fresh.interval.seconds": str(fresh_interval_s)},
    })
    t_env = environment.create(config, managed=False, streaming_source=True, parallelism=parallelism)
    settings = t_env.get_config()
    settings.get_configuration().remove_config("execution.checkpointing.interval")
    for key, value in options.items():
        settings.set(key, value)
    return t_env, config


class _Sampler:
    """While a run lasts, every 0.2 s: the resident memory and the CPU time of the processes
    below this one (the PyFlink gateway JVM, where the MiniCluster runs every task), all of it
    and its JIT compilers' share."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self.cpu: list[tuple[float, float, float]] = []  # (time.monotonic(), CPU seconds so far, of which JIT)
        self._threads: dict[int, cpu.ThreadCpu] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "_Sampler":
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._take()

    def _take(self) -> None:
        pids = cpu.descendants(os.getpid())
        self.peak_kb = max(self.peak_kb, sum(_rss_kb(pid) for pid in pids))
        for pid in pids:
            self._threads.setdefault(pid, cpu.ThreadCpu(pid)).take()
        jit = sum(threads.seconds_of(cpu.JIT_THREADS) for threads in self._threads.values())
        self.cpu.append((time.monotonic(), cpu.cpu_seconds(pids), jit))

    def cpu_seconds_between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds used from ``start`` to ``end`` (monotonic), all and the JIT's, between samples
        by interpolation."""
        times = [sample[0] for sample in self.cpu]

        def used(column: int) -> float:
            values = [sample[column] for sample in self.cpu]
            return float(np.interp(end, times, values) - np.interp(start, times, values))
        return used(1), used(2)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(name: str, events: int, build: Build) -> Figure:
    """Build a statement set, run it to the end; print and return the figure. The CPU time is the
    JVM's over the job's net runtime (the span events/s is taken over), so planning is not in it."""
    statement_set = build()
    with _Sampler() as sampler:
        result = statement_set.execute().get_job_client().get_job_execution_result().result()
        ended = time.monotonic()
    seconds = result.get_net_runtime() / 1000
    figure = Figure(name, events, seconds, sampler.peak_kb / 1024, *sampler.cpu_seconds_between(ended - seconds, ended))
    print(f"{name:52s} {figure.rate:>10,.0f} events/s {figure.seconds:6.1f} s  "
          f"{figure.per_core_second:>10,.0f} events/core-s ({figure.cores:.2f} cores, JIT {figure.jit_cpu_seconds:.1f} CPU-s)  "
          f"JVM peak RSS {figure.jvm_peak_rss_mb:,.0f} MB", flush=True)
    return figure


# --- variants ------------------------------------------------------------------------------

def _blackhole_like(t_env: TableEnvironment, name: str, query: str, statement_set: StatementSet) -> None:
    """A blackhole sink with every column of ``query``, and the INSERT that feeds it."""
    columns = ", ".join(
        f"`{column.getName()}` {re.sub(r' [*](ROW|PROC)TIME[*]', '', column.getDataType().toString())}"
        for column in t_env.sql_query(query)._j_table.getResolvedSchema().getColumns())
    t_env.execute_sql(f"CREATE TEMPORARY TABLE `{name}` ({columns}) WITH ('connector' = 'blackhole')")
    statement_set.add_insert_sql(f"INSERT INTO `{name}` {query}")


def ceiling_datagen(events: int, parallelism: int, options: dict[str, str]) -> StatementSet:
    """Rows made in the JVM into a blackhole: the engine with no input to read or parse."""
    t_env, _ = _table_env("file:///unused", parallelism, options)
    t_env.execute_sql(f"CREATE TEMPORARY TABLE gen (payload STRING) WITH ('connector' = 'datagen', "
                      f"'number-of-rows' = '{events}', 'rows-per-second' = '1000000000', "
                      "'fields.payload.length' = '100')")
    statement_set = t_env.create_statement_set()
    _blackhole_like(t_env, "gen_sink", "SELECT payload FROM gen", statement_set)
    return statement_set


def ceiling_file(events: int, parallelism: int, options: dict[str, str], copies: int = 1) -> StatementSet:
    """The raw lines (sources/file/events_raw.sql), ``copies`` times over, into a blackhole: the
    source alone."""
    t_env, config = _table_env(_copies(input_path(events, parallelism), copies).as_uri(), parallelism, options)
    t_env.execute_sql(load_catalog(SQL_DIR, "file", config).tables[0].text)
    statement_set = t_env.create_statement_set()
    _blackhole_like(t_env, "raw_sink", "SELECT payload FROM events_raw", statement_set)
    return statement_set


def q5_shaped(events: int, parallelism: int, options: dict[str, str], *, keys: int, rows_per_ms: int) -> StatementSet:
    """Nexmark q5's window step ("hot items": bids counted per auction, HOP 10 s / 2 s), on rows
    made in the JVM into a blackhole: ``keys`` auctions drawn uniformly, event time advancing 1 ms
    every ``rows_per_ms`` rows (the datagen sequence interleaves its subtasks, so they advance
    together), Nexmark's 4 s watermark delay."""
    t_env, _ = _table_env("file:///unused", parallelism, options)
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE bids (
          id BIGINT, auction BIGINT,
          date_time AS TO_TIMESTAMP_LTZ(id / {rows_per_ms}, 3),
          WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
        ) WITH ('connector' = 'datagen', 'rows-per-second' = '1000000000',
                'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{events}',
                'fields.auction.min' = '0', 'fields.auction.max' = '{keys - 1}')""")
    statement_set = t_env.create_statement_set()
    _blackhole_like(t_env, "q5_sink", """
        SELECT auction, window_start, window_end, COUNT(*) AS num
        FROM TABLE(HOP(TABLE bids, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end""", statement_set)
    return statement_set


def parse_only(events: int, parallelism: int, options: dict[str, str], *, old_parse: bool = False) -> StatementSet:
    """Every column of `events` (parse, watermark, reject reason) into a blackhole; ``old_parse``:
    with the JSON_VALUE parse it replaced."""
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, options)
    catalog = load_catalog(SQL_DIR, "file", config)
    if old_parse:
        catalog = parse_before(catalog, config)
    for statement in catalog.definitions:
        t_env.execute_sql(statement.text)
    statement_set = t_env.create_statement_set()
    _blackhole_like(t_env, "parsed_sink", "SELECT * FROM events", statement_set)
    return statement_set


def _left_open(catalog: Catalog) -> Catalog:
    """The file source keeps watching its folder after the input, so the job (and its state)
    lives on until cancelled."""
    def watch(statement: Statement) -> Statement:
        text = statement.text.replace("'connector' = 'filesystem'",
                                      "'connector' = 'filesystem', 'source.monitor-interval' = '1 h'")
        return dataclasses.replace(statement, text=text)

    return dataclasses.replace(catalog, tables=[watch(statement) for statement in catalog.tables])


def hot_path(events: int, parallelism: int, options: dict[str, str], *, fixed_sinks: bool = False,
             left_open: bool = False, fresh_interval_s: int = 0, old_parse: bool = False) -> StatementSet:
    """Parse -> dedup -> every shipped feature -> blackhole sinks with all feature columns.

    ``fixed_sinks`` adds sql/sinks/*.sql as the job has them: five counters and the (here empty)
    quarantine and late outputs. ``fresh_interval_s`` adds the fresh slices (versions written
    that often) into blackhole sinks too. ``old_parse``: with the parse before EVENT_FIELDS.
    """
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, options, fresh_interval_s)
    catalog = load_catalog(SQL_DIR, "file", config)
    if old_parse:
        catalog = parse_before(catalog, config)
    if left_open:
        catalog = _left_open(catalog)
    statement_set = t_env.create_statement_set()
    schemas = pipeline.register_features(t_env, catalog) + pipeline.register_fresh(t_env, catalog, config)
    for schema in schemas:
        _blackhole_like(t_env, f"{schema.name}__sink", f"SELECT * FROM `{schema.name}`", statement_set)
    for statement in catalog.sinks if fixed_sinks else []:
        if re.match(r"(?is)\s*(--[^\n]*\n\s*)*INSERT\b", statement.text):
            statement_set.add_insert_sql(statement.text)
        else:
            t_env.execute_sql(statement.text)
    return statement_set


def whole_job(events: int, parallelism: int, options: dict[str, str], fresh_interval_s: int, *,
              old_parse: bool = False) -> StatementSet:
    """The job's whole statement set (jobs.streaming.pipeline.build) minus PostgreSQL: every Parquet
    output on local disk, counters, progress markers, fresh slices every ``fresh_interval_s`` (0: none)."""
    out, checkpoints = PERF_DIR / "out" / "whole-job", PERF_DIR / "checkpoints" / "whole-job"
    for folder in (out, checkpoints):
        shutil.rmtree(folder, ignore_errors=True)
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, {
        # The Parquet sinks commit files on checkpoints, as in the live job (and like it, to files:
        # the JobManager's memory takes no more than 5 MB of state).
        "execution.checkpointing.interval": "10 s", "execution.checkpointing.dir": checkpoints.as_uri(), **options},
        fresh_interval_s)
    config = config.with_overrides({"output": {"path": out.as_uri()}})
    catalog = load_catalog(SQL_DIR, "file", config)
    return pipeline.build(t_env, parse_before(catalog, config) if old_parse else catalog, config,
                          output_root=out.as_uri(), jdbc_password=None, streaming_commit=True).statement_set


# --- state ---------------------------------------------------------------------------------

def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(what: str, check: Callable[[], object], timeout_s: float = 600) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"state run: gave up waiting for {what}")


def measure_state(backend: str, options: dict[str, str], events: int) -> StateFigure:
    """Checkpointed bytes per operator once every event is in the state, read from the REST API.

    The source stays open (the windows still hold the last minutes, the dedup every txid);
    the first checkpoint that starts after the dedup has read every record holds them all.
    """
    folder = PERF_DIR / "checkpoints" / backend
    shutil.rmtree(folder, ignore_errors=True)
    statement_set = hot_path(events, PARALLELISM, {
        **options, "execution.checkpointing.interval": "3 s", "execution.checkpointing.dir": folder.as_uri(),
        "metrics.fetcher.update-interval": "1000"}, left_open=True)
    client = statement_set.execute().get_job_client()
    job_id = str(client.get_job_id())
    try:
        base = str(_wait("the REST API", lambda: counters.find_rest_base(job_id)))
        jobs = f"{base}/jobs/{job_id}"

        def dedup_read() -> int:
            return sum(v["metrics"]["read-records"] for v in _get(jobs)["vertices"] if v["name"].startswith("Deduplicate"))

        _wait("the dedup to read every event", lambda: dedup_read() >= events)
        read_at_ms = time.time() * 1000

        def checkpoint_after() -> int | None:
            completed = (_get(f"{jobs}/checkpoints").get("latest") or {}).get("completed") or {}
            return completed["id"] if completed.get("trigger_timestamp", 0) > read_at_ms else None

        checkpoint = _wait("a checkpoint", checkpoint_after)
        tasks = _get(f"{jobs}/checkpoints/details/{checkpoint}")["tasks"]
        names = {v["id"]: v["name"] for v in _get(jobs)["vertices"]}
    finally:
        client.cancel().result()
    sizes = {names[vertex]: task.get("state_size", task.get("checkpointed_size", 0)) for vertex, task in tasks.items()}
    source = cached_events(events, users=USERS)
    figure = StateFigure(
        backend=backend,
        dedup_bytes=sum(size for name, size in sizes.items() if name.startswith("Deduplicate")),
        window_bytes={feature: sum(size for name, size in sizes.items() if f"{feature}__sink" in name)
                      for feature in ("user_activity_5m", "user_activity_1h")},
        txids=distinct_txids(source), users=_distinct_users(source))
    print(f"state {backend:8s} dedup {figure.dedup_bytes / 2**20:,.1f} MiB = {figure.bytes_per_txid:,.0f} B/txid; "
          + ", ".join(f"{name} {size / 2**20:,.1f} MiB = {size / figure.users:,.0f} B/user"
                      for name, size in figure.window_bytes.items()), flush=True)
    return figure


# --- variants, each run in a JVM of its own -------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One measured configuration: what it builds for n events, and how many rows that makes."""

    name: str
    build: Callable[[int], StatementSet] | None  # None: the Python baseline (no Flink)
    scale: int = 1  # rows per input event
    in_default: bool = False  # run by the default bench; every variant runs with --full


PYTHON = "Python baseline: one thread, dicts"
WHOLE_JOB_ROCKSDB = f"whole job, RocksDB, with fresh slices every {FRESH_INTERVAL_S} s (as shipped to Managed Flink)"
NEXMARK_Q5_PER_CORE = 22_100  # Flink's Nexmark, q5 per core (Flink 1.13, RocksDB, 8 x 1-slot TaskManagers)
Q5_REFERENCE = "q5-shaped on RocksDB: this job's pace (1 row/ms), 100k keys"
# The ceilings make or read that many rows per event, for >= 10 s at the rates they reach here.
DATAGEN_SCALE = 15
FILE_CEILING_COPIES = 40

VARIANTS = [
    Variant("ceiling: datagen -> blackhole",
            lambda n: ceiling_datagen(n * DATAGEN_SCALE, PARALLELISM, dict(HEAP)), DATAGEN_SCALE),
    Variant("ceiling: raw lines -> blackhole",
            lambda n: ceiling_file(n, PARALLELISM, dict(HEAP), copies=FILE_CEILING_COPIES), FILE_CEILING_COPIES),
    # Nexmark's generator dates 10M events per second; its bids go to ~100 auctions in flight.
    Variant("q5-shaped on RocksDB: Nexmark's pace (10k rows/ms), 1k keys",
            lambda n: q5_shaped(n * DATAGEN_SCALE, PARALLELISM, dict(ROCKSDB), keys=1_000, rows_per_ms=10_000),
            DATAGEN_SCALE),
    # The job's perf events: 1 event per ms of event time, 100k users.
    Variant("q5-shaped on RocksDB: this job's pace (1 row/ms), 100k keys",
            lambda n: q5_shaped(n, PARALLELISM, dict(ROCKSDB), keys=USERS, rows_per_ms=1), in_default=True),
    Variant("parse, before: JSON_VALUE per field, settings before",
            lambda n: parse_only(n, PARALLELISM, {**HEAP, **BEFORE}, old_parse=True)),
    Variant("parse: EVENT_FIELDS, one parse (the job)", lambda n: parse_only(n, PARALLELISM, dict(HEAP))),
    Variant("hot path, heap, before: JSON_VALUE parse, settings before",
            lambda n: hot_path(n, PARALLELISM, {**HEAP, **BEFORE}, old_parse=True)),
    Variant("hot path, heap (the job, local)", lambda n: hot_path(n, PARALLELISM, dict(HEAP)), in_default=True),
    Variant("hot path, RocksDB, before: JSON_VALUE parse, settings before",
            lambda n: hot_path(n, PARALLELISM, {**ROCKSDB, **BEFORE}, old_parse=True)),
    Variant("hot path, RocksDB (the job, Managed Flink)", lambda n: hot_path(n, PARALLELISM, dict(ROCKSDB)), in_default=True),
    Variant("whole job, heap, before: JSON_VALUE parse, settings before",
            lambda n: whole_job(n, PARALLELISM, {**HEAP, **BEFORE}, 0, old_parse=True)),
    Variant("whole job, heap (the job)", lambda n: whole_job(n, PARALLELISM, dict(HEAP), 0)),
    Variant(f"whole job, heap, with fresh slices every {FRESH_INTERVAL_S} s (as shipped)",
            lambda n: whole_job(n, PARALLELISM, dict(HEAP), FRESH_INTERVAL_S)),
    Variant(WHOLE_JOB_ROCKSDB,
            lambda n: whole_job(n, PARALLELISM, dict(ROCKSDB), FRESH_INTERVAL_S), in_default=True),
    Variant(PYTHON, None, in_default=True),
]
# RocksDB levers: the RocksDB hot path with one setting changed. "job" marks what the job can set
# on Managed Flink (table and pipeline options); a cluster setting is the state backend's, which
# Managed Flink changes only on a support case. Not here: RocksDB timers on the heap
# (state.backend.rocksdb.timer-service.factory: HEAP), which ran +70-115% because Flink 1.20's
# window operators then emit only a fraction of their windows (README "Performance").
ROCKSDB_LEVERS: dict[str, dict[str, str]] = {
    "object reuse off (as before; the job sets it on)": {"pipeline.object-reuse": "false"},
    "bloom filter off (as before; the job sets it on)": {"state.backend.rocksdb.use-bloom-filter": "false"},
    "mini-batch 1 s / 5000 rows (job)": {"table.exec.mini-batch.enabled": "true",
                                         "table.exec.mini-batch.allow-latency": "1 s",
                                         "table.exec.mini-batch.size": "5000"},
    "window buffer 1M rows, default 100k (job)": {"table.exec.window-agg.buffer-size-limit": "1000000"},
    "two-phase (local-global) window aggregation (job)": {"table.optimizer.agg-phase-strategy": "TWO_PHASE"},
    "RocksDB predefined options FLASH_SSD_OPTIMIZED (job)": {"state.backend.rocksdb.predefined-options": "FLASH_SSD_OPTIMIZED"},
    "RocksDB predefined options SPINNING_DISK_OPTIMIZED_HIGH_MEM (job)": {
        "state.backend.rocksdb.predefined-options": "SPINNING_DISK_OPTIMIZED_HIGH_MEM"},
    "RocksDB write buffers 20% of managed memory, default 50% (job)": {"state.backend.rocksdb.memory.write-buffer-ratio": "0.2"},
    "managed memory 2 GB, here 1 GB (cluster: KPUs and taskmanager.memory.managed.fraction)": {
        "taskmanager.memory.managed.size": "2g"},
}
VARIANTS += [Variant(f"RocksDB lever: {name}", lambda n, o=options: hot_path(n, PARALLELISM, {**ROCKSDB, **o}))
             for name, options in ROCKSDB_LEVERS.items()]
BY_NAME = {variant.name: variant for variant in VARIANTS}
BEFORE_AFTER = [("parse, before: JSON_VALUE per field, settings before", "parse: EVENT_FIELDS, one parse (the job)"),
                ("hot path, heap, before: JSON_VALUE parse, settings before", "hot path, heap (the job, local)"),
                ("hot path, RocksDB, before: JSON_VALUE parse, settings before", "hot path, RocksDB (the job, Managed Flink)"),
                ("whole job, heap, before: JSON_VALUE parse, settings before", "whole job, heap (the job)")]
ROCKSDB_REFERENCE = "hot path, RocksDB (the job, Managed Flink)"


def python_baseline(events: int) -> Figure:
    """The shipped features in one Python thread (tests/perf/baseline_features.py: json.loads, a
    set of txids, dicts of windows, an event-time watermark; no I/O, no fault tolerance)."""
    path = cached_events(events, users=USERS)
    features = WindowedFeatures(delay_ms=30_000)
    started, cpu_started = time.perf_counter(), time.process_time()
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            event = parse_event(line)
            if event is not None:
                features.add(event)
            if number % 10_000 == 0:
                features.pop_final()
    features.pop_final(flush_all=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return Figure(PYTHON, events, seconds,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cpu_seconds)


def run_variant(name: str, events: int, warmup: int) -> Figure:
    """In this process: a warm-up run of the same variant (JIT, class loading), then the measured one."""
    variant = BY_NAME[name]
    if variant.build is None:
        python_baseline(min(events, warmup))
        return python_baseline(events)
    if warmup:
        measure("warm-up (not reported)", warmup * variant.scale, lambda: variant.build(warmup))
    return measure(name, events * variant.scale, lambda: variant.build(events))


RESULT = "RESULT "  # a child's stdout line carrying its figure as JSON


def _in_own_jvm(name: str, events: int, warmup: int) -> Figure:
    """One variant in a fresh Python process, so a fresh JVM: nothing carries over between variants."""
    command = [sys.executable, "-m", "tests.perf.throughput", "--variant", name, "--events", str(events),
               "--warmup", str(warmup)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYFLINK")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not results:
        raise RuntimeError(f"variant {name!r} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return Figure(**json.loads(results[-1][len(RESULT):]))


@dataclass
class Results:
    events: int
    repeats: int
    load_before: str
    load_after: str = ""
    runs: dict[str, list[Figure]] = field(default_factory=dict)
    state: list[StateFigure] = field(default_factory=list)

    def rates(self, name: str, per_core: bool = False) -> list[float]:
        """events/s of every run, or with ``per_core`` events per core-second."""
        return [figure.per_core_second if per_core else figure.rate for figure in self.runs.get(name, [])]

    def median(self, name: str, per_core: bool = False) -> float:
        return statistics.median(self.rates(name, per_core))

    def median_if_run(self, name: str, per_core: bool = False) -> float | None:
        """The median, or None for a variant left out (``--select``)."""
        return self.median(name, per_core) if self.rates(name) else None


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _chosen(full: bool, select: tuple[str, ...]) -> list[str]:
    """``select``: the variants whose name holds one of these texts; else every variant with ``full``,
    the default ones without."""
    if select:
        return [variant.name for variant in VARIANTS if any(part in variant.name for part in select)]
    return [variant.name for variant in VARIANTS if full or variant.in_default]


def run(events: int, repeats: int, warmup: int = WARMUP_EVENTS, select: tuple[str, ...] = (),
        full: bool = True) -> Results:
    """The chosen variants (``_chosen``) ``repeats`` times each, each run in its own JVM, the order
    rotated every round so no variant always runs first or after the same neighbour; then, in a full
    run, the state sizes (once per backend)."""
    results = Results(events, repeats, _load())
    print(f"throughput: {events:,} events, {USERS:,} users, 10% re-sent, {repeats} rounds; load {results.load_before}",
          flush=True)
    for parallelism in (1, PARALLELISM):
        input_path(events, parallelism)
    names = _chosen(full, select)
    warmup = min(warmup, events // 3)
    for round_number in range(repeats):
        shift = round_number * len(names) // max(repeats, 1)
        for name in names[shift:] + names[:shift]:
            figure = _in_own_jvm(name, events, warmup)
            results.runs.setdefault(name, []).append(figure)
            print(f"round {round_number + 1}: {name:60s} {figure.rate:>12,.0f} events/s {figure.seconds:6.1f} s", flush=True)
    for backend, options in (("heap", HEAP), ("RocksDB", ROCKSDB)) if full and not select else ():
        results.state.append(measure_state(backend, options, min(events, STATE_EVENTS)))
    results.load_after = _load()
    return results


def _spread(rates: list[float]) -> str:
    return f"{min(rates):,.0f} – {max(rates):,.0f}"


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if reference else "—"


def markdown(results: Results) -> str:
    lines = [
        "## Throughput (hot path)",
        "",
        f"{results.events:,} JSON events ({USERS:,} users, 10% re-sent txids, 4 event types), parallelism "
        f"{PARALLELISM}. Every variant ran {results.repeats} times, each run in a JVM of its own after a warm-up "
        f"run of a third as many events in that JVM, the order rotated every round; load average "
        f"{results.load_before} before, {results.load_after} after (on {os.cpu_count()} cores). events/s = input rows "
        "/ the job's net runtime; events per core-second = input rows / the JVM's CPU seconds over that runtime, "
        "its JIT compilers' left out (Nexmark's throughput per core, taken on a job running for minutes). The hot "
        "path is the job's own SQL and settings: parse -> dedup by txid -> HOP 5m/1m and TUMBLE 1h -> blackhole "
        "sinks with every feature column. The q5-shaped rows are Nexmark q5's window step on rows made in the JVM.",
        "",
        "| Variant | events/s, median | spread (min – max) | seconds, median | events per core-second, median "
        "| spread | cores busy | × q5-shaped, per core | × Python, per core |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    q5 = results.median_if_run(Q5_REFERENCE, per_core=True)
    python_per_core = results.median_if_run(PYTHON, per_core=True)
    for variant in VARIANTS:
        figures = results.runs.get(variant.name)
        if not figures:
            continue
        rates, per_core = results.rates(variant.name), results.rates(variant.name, per_core=True)
        lines.append(f"| {variant.name} | {statistics.median(rates):,.0f} | {_spread(rates)} "
                     f"| {statistics.median(f.seconds for f in figures):.1f} | {statistics.median(per_core):,.0f} "
                     f"| {_spread(per_core)} | {statistics.median(f.cores for f in figures):.2f} "
                     f"| {_ratio(statistics.median(per_core), q5)} | {_ratio(statistics.median(per_core), python_per_core)} |")
    lines += ["", "Before → after (medians):", ""]
    for before, after in BEFORE_AFTER:
        if results.rates(before) and results.rates(after):
            lines.append(f"- {after}: {results.median(after) / results.median(before):.2f}× {before}")
    whole_job, python = results.median_if_run(WHOLE_JOB_ROCKSDB, per_core=True), results.median_if_run(PYTHON)
    if whole_job and python:
        lines += ["", f"Goal: {WHOLE_JOB_ROCKSDB} at {whole_job:,.0f} events per core-second against Nexmark q5's "
                  f"{NEXMARK_Q5_PER_CORE:,} ({whole_job / NEXMARK_Q5_PER_CORE:.2f}×); {results.median(WHOLE_JOB_ROCKSDB):,.0f} "
                  f"events/s on {PARALLELISM} subtasks against the Python loop's {python:,.0f} "
                  f"({results.median(WHOLE_JOB_ROCKSDB) / python:.2f}×)."]
    reference, reference_per_core = results.median_if_run(ROCKSDB_REFERENCE), results.median_if_run(ROCKSDB_REFERENCE, True)
    if reference:
        lines += ["", f"RocksDB levers against {ROCKSDB_REFERENCE} ({reference:,.0f} events/s, "
                      f"{reference_per_core:,.0f} per core-second, medians):", ""]
        for name in ROCKSDB_LEVERS:
            lever = f"RocksDB lever: {name}"
            if results.rates(lever):
                lines.append(f"- {name}: {results.median(lever) / reference - 1:+.0%} events/s (spread "
                             f"{_spread(results.rates(lever))}), {results.median(lever, True) / reference_per_core - 1:+.0%} "
                             "per core-second")
    lines += [] if not results.state else [
        "",
        "State, from the checkpoint taken once every event was in it (the windows hold the open "
        "5-minute slices and the current hour):",
        "",
        "| Backend | dedup: total | per txid | user_activity_5m: total | per user | user_activity_1h: total | per user |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results.state:
        windows = " | ".join(f"{size / 2**20:,.1f} MiB | {size / s.users:,.0f} B" for size in s.window_bytes.values())
        lines.append(f"| {s.backend} | {s.dedup_bytes / 2**20:,.1f} MiB | {s.bytes_per_txid:,.0f} B | {windows} |")
    if results.state:
        s = results.state[0]
        lines += ["", f"({s.txids:,} txids, {s.users:,} users; RocksDB sizes are its compressed files.)"]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> str:
    """The Markdown section for `python -m tests.perf` (args.events, args.repeats, args.full)."""
    return markdown(run(args.events, args.repeats, select=tuple(getattr(args, "select", None) or ()),
                        full=args.full))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="input events (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every variant (default 3)")
    parser.add_argument("--variant", choices=list(BY_NAME), help="run one variant in this process and print its figure")
    parser.add_argument("--warmup", type=int, default=WARMUP_EVENTS, help="events of the warm-up run before it")
    parser.add_argument("--select", action="append", metavar="TEXT",
                        help="only the variants whose name holds TEXT (repeatable), no state sizes")
    parser.add_argument("--full", action="store_true",
                        help="every variant (ceilings, the job before, levers) and the state sizes; "
                             "without it the job's own variants and the Python baseline")
    args = parser.parse_args()
    if args.variant:
        figure = run_variant(args.variant, args.events, args.warmup)
        print(RESULT + json.dumps(dataclasses.asdict(figure)), flush=True)
        return
    print(report(args))


if __name__ == "__main__":
    main()
