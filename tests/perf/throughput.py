"""Throughput of the job's hot path against the machine's ceiling, peak memory and state size.

    python -m tests.perf.throughput [--events 5000000]

One process, one JVM, every variant side by side after a warm-up run, on the same generated
events (tests/perf/events.py: 100k users, 10% re-sent txids) split round-robin into one file per
subtask, as Kinesis shards would be:
  * ceiling: rows made in the JVM (datagen), and the same raw lines, straight into a blackhole;
  * parse: sources/events_parsed.sql + views/events.sql, every column into a blackhole;
  * hot path: parse -> dedup -> both shipped features -> blackhole sinks with every feature
    column (the job's own SQL and settings, via jobs.pipeline.register_features), on the heap
    (hashmap) state backend (local) and RocksDB (what Managed Flink always uses);
  * levers: the hot path with one setting changed, with fresh slices (jobs/fresh_slices.py) into
    blackhole sinks too, and the whole job (jobs.pipeline.build with its Parquet outputs on local
    disk, no PostgreSQL) with and without fresh slices, on min(events, 1M) events;
  * state: checkpointed bytes of the dedup (per txid) and window operators (per user).
events/s = input lines / the job's net runtime (from deployment to the end, no JVM start).
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
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyflink.table import StatementSet, TableEnvironment

from jobs import config as job_config
from jobs import counters, environment, pipeline
from jobs.sql_catalog import Catalog, Statement, load_catalog
from tests.perf.events import PERF_DIR, cached_events, distinct_txids

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
SQL_DIR = ROOT / "sql"
USERS = 100_000
PARALLELISM = 2
WARMUP_EVENTS = 300_000
LEVER_EVENTS = 1_000_000
STATE_EVENTS = 2_000_000  # window state is steady by then; dedup bytes per txid do not depend on it
FRESH_INTERVAL_S = 5  # features.fresh.interval.seconds, shipped; 0 turns fresh slices off

HEAP = {"state.backend.type": "hashmap"}
# The MiniCluster's default managed memory (128 MB for all slots) starves RocksDB: its write
# buffers flush constantly and compaction stalls writes (< 5k events/s here). 1 GB (512 MB per
# slot) is nearer what a Managed Flink KPU (1 vCPU, 4 GB) gives its slot.
ROCKSDB = {"state.backend.type": "rocksdb", "taskmanager.memory.managed.size": "1g"}
# One setting changed at a time against the job's own (heap state, parallelism 2).
LEVERS: dict[str, dict[str, str]] = {
    "two-phase window aggregation (Flink's default)": {"table.optimizer.agg-phase-strategy": "TWO_PHASE"},
    "mini-batch (1 s, 5000 rows)": {"table.exec.mini-batch.enabled": "true",
                                    "table.exec.mini-batch.allow-latency": "1 s",
                                    "table.exec.mini-batch.size": "5000"},
    "object reuse": {"pipeline.object-reuse": "true"},
}

Build = Callable[[], StatementSet]


@dataclass(frozen=True)
class Figure:
    """One measured variant."""

    name: str
    events: int
    seconds: float
    jvm_peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


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


@dataclass
class Results:
    events: int
    load_before: str
    load_after: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    levers: list[tuple[str, Figure]] = field(default_factory=list)
    state: list[StateFigure] = field(default_factory=list)
    python_peak_rss_mb: float = 0.0


# --- input ---------------------------------------------------------------------------------

def input_path(events: int, parallelism: int) -> Path:
    """The events file, split round-robin into one file per subtask (a folder) when parallel."""
    source = cached_events(events, users=USERS)
    if parallelism == 1:
        return source
    folder = source.with_name(f"{source.stem}-split{parallelism}")
    if not folder.is_dir():
        partial = folder.with_name(f".{folder.name}.{os.getpid()}")
        partial.mkdir(parents=True)
        outs = [(partial / f"part-{i}.jsonl").open("w", encoding="utf-8") for i in range(parallelism)]
        with source.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                outs[number % parallelism].write(line)
        for out in outs:
            out.close()
        partial.rename(folder)
    return folder


def _distinct_users(path: Path) -> int:
    users = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            users.add(line.split('"user_id": "', 1)[1].split('"', 1)[0])
    return len(users)


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


class _PeakRss:
    """Peak resident memory of the JVM (and any Python UDF workers below it) while a run lasts."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "_PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(pid) for pid in _descendants(os.getpid())))


def _descendants(root: int) -> list[int]:
    """Processes below ``root`` (the PyFlink gateway JVM and its Python workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(name: str, events: int, build: Build) -> Figure:
    """Build a statement set, run it to the end; print and return the figure."""
    statement_set = build()
    with _PeakRss() as rss:
        result = statement_set.execute().get_job_client().get_job_execution_result().result()
    figure = Figure(name, events, result.get_net_runtime() / 1000, rss.peak_kb / 1024)
    print(f"{name:52s} {figure.rate:>10,.0f} events/s {figure.seconds:6.1f} s  "
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


def ceiling_file(events: int, parallelism: int, options: dict[str, str]) -> StatementSet:
    """The raw lines (sources/file/events_raw.sql) into a blackhole: the source alone."""
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, options)
    t_env.execute_sql(load_catalog(SQL_DIR, "file", config).tables[0].text)
    statement_set = t_env.create_statement_set()
    _blackhole_like(t_env, "raw_sink", "SELECT payload FROM events_raw", statement_set)
    return statement_set


def parse_only(events: int, parallelism: int, options: dict[str, str]) -> StatementSet:
    """Every column of `events` (parse, watermark, reject reason) into a blackhole."""
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, options)
    catalog = load_catalog(SQL_DIR, "file", config)
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
             left_open: bool = False, fresh_interval_s: int = 0) -> StatementSet:
    """Parse -> dedup -> every shipped feature -> blackhole sinks with all feature columns.

    ``fixed_sinks`` adds sql/sinks/*.sql as the job has them: five counters and the (here empty)
    quarantine and late outputs. ``fresh_interval_s`` adds the fresh slices (versions written
    that often) into blackhole sinks too.
    """
    t_env, config = _table_env(input_path(events, parallelism).as_uri(), parallelism, options, fresh_interval_s)
    catalog = load_catalog(SQL_DIR, "file", config)
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


def whole_job(events: int, parallelism: int, options: dict[str, str], fresh_interval_s: int) -> StatementSet:
    """The job's whole statement set (jobs.pipeline.build) minus PostgreSQL: every Parquet
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
    return pipeline.build(t_env, load_catalog(SQL_DIR, "file", config), config, output_root=out.as_uri(),
                          jdbc_password=None, streaming_commit=True).statement_set


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


# --- the whole section ---------------------------------------------------------------------

def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(events: int) -> Results:
    """Every figure, in one JVM, side by side."""
    results = Results(events, _load())
    print(f"throughput: {events:,} events, {USERS:,} users, 10% re-sent; load {results.load_before}", flush=True)
    for parallelism in (1, PARALLELISM):
        input_path(events, parallelism)
    levers = min(events, LEVER_EVENTS)
    # Warm the JVM (JIT, class loading) so the first measured variant is not penalised.
    measure("warm-up (not reported)", min(events, WARMUP_EVENTS),
            lambda: hot_path(min(events, WARMUP_EVENTS), PARALLELISM, dict(HEAP)))
    main: dict[str, Build] = {
        "ceiling: datagen -> blackhole": lambda: ceiling_datagen(events, PARALLELISM, dict(HEAP)),
        "ceiling: raw lines -> blackhole": lambda: ceiling_file(events, PARALLELISM, dict(HEAP)),
        "parse only -> blackhole": lambda: parse_only(events, PARALLELISM, dict(HEAP)),
        "hot path, heap state (local)": lambda: hot_path(events, PARALLELISM, dict(HEAP)),
        "hot path, RocksDB state (Managed Flink)": lambda: hot_path(events, PARALLELISM, dict(ROCKSDB)),
    }
    for name, build in main.items():
        results.figures[name] = measure(name, events, build)
    variants: dict[str, Build] = {
        "as the job runs": lambda: hot_path(levers, PARALLELISM, dict(HEAP)),
        f"with fresh slices (every {FRESH_INTERVAL_S} s, into blackholes too)":
            lambda: hot_path(levers, PARALLELISM, dict(HEAP), fresh_interval_s=FRESH_INTERVAL_S),
    }
    variants.update({name: (lambda options=options: hot_path(levers, PARALLELISM, {**HEAP, **options}))
                     for name, options in LEVERS.items()})
    variants["parallelism 1"] = lambda: hot_path(levers, 1, dict(HEAP))
    variants["with the job's fixed sinks (5 counters, quarantine, late)"] = \
        lambda: hot_path(levers, PARALLELISM, dict(HEAP), fixed_sinks=True)
    variants["the whole job: its Parquet outputs on local disk, counters, progress (no PostgreSQL), no fresh slices"] = \
        lambda: whole_job(levers, PARALLELISM, dict(HEAP), 0)
    variants[f"the same with fresh slices (every {FRESH_INTERVAL_S} s, their Parquet changelog too)"] = \
        lambda: whole_job(levers, PARALLELISM, dict(HEAP), FRESH_INTERVAL_S)
    for name, build in variants.items():
        results.levers.append((name, measure(f"lever: {name}", levers, build)))
    for backend, options in (("heap", HEAP), ("RocksDB", ROCKSDB)):
        results.state.append(measure_state(backend, options, min(events, STATE_EVENTS)))
    results.python_peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.load_after = _load()
    return results


def markdown(results: Results) -> str:
    figures = results.figures
    ceiling = figures["ceiling: raw lines -> blackhole"].rate
    heap = figures["hot path, heap state (local)"].rate
    rocks = figures["hot path, RocksDB state (Managed Flink)"].rate
    lines = [
        "## Throughput (hot path)",
        "",
        f"{results.events:,} JSON events ({USERS:,} users, 10% re-sent txids, 4 event types), parallelism "
        f"{PARALLELISM}, one JVM, variants run one after another after a warm-up; load average "
        f"{results.load_before} before, {results.load_after} after (on {os.cpu_count()} cores). events/s = "
        "input lines / the job's net runtime. The hot path is the job's own SQL and settings: parse -> "
        "dedup by txid -> HOP 5m/1m and TUMBLE 1h -> blackhole sinks with every feature column.",
        "",
        "| Variant | events/s | seconds | JVM peak RSS (MB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {f.name} | {f.rate:,.0f} | {f.seconds:.1f} | {f.jvm_peak_rss_mb:,.0f} |" for f in figures.values()]
    lines += [
        "",
        f"Hot path / raw-lines ceiling: heap {heap / ceiling:.0%}, RocksDB {rocks / ceiling:.0%}. "
        f"Python process peak RSS: {results.python_peak_rss_mb:,.0f} MB (the JVM does the work).",
        "",
        f"Levers ({results.levers[0][1].events:,} events, heap state, one setting changed at a time; "
        "the job's settings include the winners):",
        "",
        "| Setting | events/s | vs the job's settings |",
        "| --- | ---: | ---: |",
    ]
    reference = results.levers[0][1].rate
    lines += [f"| {name} | {f.rate:,.0f} | {f.rate / reference - 1:+.0%} |" for name, f in results.levers]
    lines += ["", "Fresh slices cut their versions by processing time: a run that reads these events in seconds "
              "writes fewer versions per event than a live feed of a few thousand events/s, so their cost here is "
              "a lower bound (the end-to-end section counts the live rows they write to PostgreSQL)."]
    lines += [
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
    """The Markdown section for `python -m tests.perf` (args.events)."""
    return markdown(run(args.events))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="input events (default 5,000,000)")
    print(report(parser.parse_args()))


if __name__ == "__main__":
    main()
