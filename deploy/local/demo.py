"""``python -m deploy.local demo``: the whole pipeline on this machine, live, in one command.

up -> connector jar (Maven, if missing) -> migrate -> job in the background -> sample events
(duplicates, disorder, malformed lines, dated now) -> a fresh small batch every few seconds while a
live view shows the newest feature rows in PostgreSQL and the Parquet files in S3 -> how to look
again and how to stop. ``--watch`` skips the setup and looks at the job already running.

Windows are emitted when the watermark (newest event time minus the configured delay) passes their
end, so rows keep appearing only while fresh events keep arriving: that is why the demo trickles.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import psycopg

from deploy.local import aws, job, producer, services
from deploy.local.config import DEFAULT_CONFIG, REPO_ROOT, LocalSettings
from deploy.local.generator import GeneratorOptions, GeneratorSummary, generate
from deploy.local.outputs import (FeatureTable, S3Listing, data_files, feature_tables, folder,
                                  quarantine_reasons, read_parquet, s3_listing)
from deploy.local.state import DEFAULT_STATE, StateDirs
from jobs.definitions import config as job_config

log = logging.getLogger(__name__)

# What `make jar` builds (see jobs/streaming/environment.py): the connector jar and the S3 filesystem plugin.
JAR = REPO_ROOT / "target" / "pyflink-dependencies.jar"
PLUGINS = REPO_ROOT / "target" / "plugins"
JOB_START_TIMEOUT_S = 180.0
REUSED_JOB_TIMEOUT_S = 30.0


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoOptions:
    config_path: Path = DEFAULT_CONFIG
    seconds: float = 75.0       # how long the live view (and the trickle) runs; 0 = one snapshot
    interval: float = 5.0       # a fresh batch and a refreshed view every this many seconds
    events: int = 2000          # the first batch: distinct valid events over the last 10 minutes
    users: int = 50
    batch_events: int = 40      # each fresh batch
    rows: int = 8               # feature rows shown per table
    watch: bool = False         # look at the running job only: no up / jar / migrate / start
    produce: bool = True        # --no-produce: send nothing, just look
    aws: str = "emulator"       # --aws localstack: real LocalStack when nothing answers on the endpoint


@dataclass
class Sent:
    """What the demo put into the stream, for the status line."""

    records: int = 0
    batches: int = 0
    duplicates: int = 0
    malformed: int = 0
    newest_event: datetime | None = None

    def add(self, summary: GeneratorSummary, records: int) -> None:
        self.records += records
        self.batches += 1
        self.duplicates += summary.duplicates
        self.malformed += sum(summary.malformed.values())
        if summary.last_event_time:
            self.newest_event = datetime.fromisoformat(summary.last_event_time.replace("Z", "+00:00"))


# --- setup steps ----------------------------------------------------------------------------------

@contextmanager
def _step(title: str) -> Iterator[None]:
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def _shown(path: Path) -> str:
    """A path as a user in the repository would type it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _cli(command: str, config_path: Path) -> str:
    """The command a user types; --config only when it is not the default."""
    suffix = "" if config_path.resolve() == DEFAULT_CONFIG.resolve() else f" --config {config_path}"
    return f"python -m deploy.local {command}{suffix}"


def _start_services(settings: LocalSettings, state: StateDirs, aws: str) -> None:
    report = services.up(settings, state, aws)
    for line in report.lines(settings, state):
        print(f"    {line}")


def _run_checked(cmd: Sequence[str], what: str) -> str:
    result = subprocess.run(list(cmd), cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise DemoError(f"{what} failed (exit {result.returncode}):\n    {tail}")
    return result.stdout


def _ensure_jar() -> None:
    # The same Maven build makes both; without the plugin every s3:// write fails.
    if JAR.is_file() and PLUGINS.is_dir():
        print(f"    {JAR.relative_to(REPO_ROOT)} and {PLUGINS.relative_to(REPO_ROOT)}/ are there")
        return
    if not shutil.which("mvn"):
        raise DemoError(f"{JAR} or {PLUGINS} is missing and Maven (mvn) is not installed; "
                        "install Maven and run `make setup`")
    print("    building it with Maven (the first build downloads dependencies: a few minutes)", flush=True)
    _run_checked(["mvn", "-q", "-B", "-f", str(REPO_ROOT / "deploy" / "pom.xml"), "package"], "Maven build")


def _migrate(config_path: Path) -> None:
    out = _run_checked([sys.executable, "-m", "jobs.feature_job", "migrate", "--config", str(config_path)],
                       "migrate")
    summary = [line for line in out.splitlines() if line.startswith("--")]
    print(f"    migrate: {summary[-1].lstrip('- ') if summary else 'tables ready'}")


def _start_job(state: StateDirs, config_path: Path) -> tuple[job.RunningJob, bool]:
    """The job on this config: the one already running (reused as it is) or a new one.

    The flag is True for a job this call started."""
    existing = job.find(state, config_path)
    if existing is not None:
        who = "the demo" if existing.ours else "hand; the demo will not stop it"
        print(f"    a job on this config is already running (pid {existing.pid}, started by {who}): using it")
        return existing, False
    _migrate(config_path)
    return job.start(state, config_path), True


def _prepare(settings: LocalSettings, state: StateDirs, options: DemoOptions) -> tuple[job.RunningJob, bool]:
    """Services, jar and job for a full demo; only the running job for ``--watch``."""
    if options.watch:
        running = job.find(state, options.config_path)
        if running is None:
            raise DemoError(f"no job is running on {options.config_path}; start the demo with "
                            f"`{_cli('demo', options.config_path)}`")
        return running, False
    with _step(f"Kinesis + S3 ({options.aws} unless one answers) and PostgreSQL (up)"):
        _start_services(settings, state, options.aws)
    with _step("connector jar"):
        _ensure_jar()
    with _step("feature tables (migrate) and the streaming job, in the background"):
        return _start_job(state, options.config_path)


def _wait_for_job(running: job.RunningJob, state: StateDirs, config_path: Path, fresh: bool) -> str:
    # A job already running needs no start-up time: if it is not RUNNING soon, it is unhealthy
    # (restarting after `reset` recreated its stream, say), and only a restart helps.
    try:
        return job.wait_until_running(running, JOB_START_TIMEOUT_S if fresh else REUSED_JOB_TIMEOUT_S)
    except job.JobError as exc:
        if fresh:
            job.stop(state, config_path)  # do not leave a half-started job behind
            raise
        raise DemoError(f"{exc}\nRestart it: `{_cli('stop-job', config_path)}`, then `{_cli('demo', config_path)}`"
                        ) from None


# --- events ---------------------------------------------------------------------------------------

def retag(path: Path, prefix: str) -> None:
    """Prefix every txid: the generator numbers them t-1, t-2, ... on every call, and the job
    drops a txid it has already seen (for 24 h), so each batch needs its own. A re-sent line is
    rewritten exactly like its original, so it stays a duplicate."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("txid"), str):
            event["txid"] = prefix + event["txid"]
            line = json.dumps(event)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _first_batch(options: DemoOptions, seed: int) -> GeneratorOptions:
    return GeneratorOptions(users=options.users, events=options.events, duplicates=0.1,
                            out_of_order_seconds=20.0, malformed=0.01, seed=seed, span_seconds=600.0)


def _fresh_batch(options: DemoOptions, number: int) -> GeneratorOptions:
    # Event times over the last interval, a little out of order, with some re-sends and bad lines.
    return GeneratorOptions(users=options.users, events=options.batch_events, duplicates=0.1,
                            out_of_order_seconds=min(5.0, options.interval), malformed=0.1,
                            seed=number, span_seconds=max(1.0, options.interval))


# --- rendering ------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%H:%M")
    return str(value)


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "    ") -> list[str]:
    """A compact text table; window_start/window_end become one 'window (UTC)' column, HH:MM-HH:MM."""
    if "window_start" in columns and "window_end" in columns:
        start, end = columns.index("window_start"), columns.index("window_end")
        rest = [i for i in range(len(columns)) if i not in (start, end)]
        header = [columns[rest[0]], "window (UTC)", *(columns[i] for i in rest[1:])]
        body = [[_cell(r[rest[0]]), f"{_cell(r[start])}-{_cell(r[end])}", *(_cell(r[i]) for i in rest[1:])]
                for r in rows]
    else:
        header, body = list(columns), [[_cell(v) for v in r] for r in rows]
    widths = [max([len(h), *(len(b[i]) for b in body)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        # Text left, numbers right: the first column is the user.
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return indent + "  ".join([cells[0].ljust(widths[0]), *rest])

    return [line(header), *(line(b) for b in body)]


def _next_hour_close(delay_s: int) -> str:
    """When the next 1-hour window can close: the top of the next hour plus the watermark delay."""
    now = datetime.now(timezone.utc)
    hour = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return f"{hour + timedelta(seconds=delay_s):%H:%M:%S}"


def _feature_lines(tables: list[FeatureTable], delay_s: int) -> list[str]:
    if not tables:
        return ["PostgreSQL: no feature tables yet (migrate creates them)"]
    lines = []
    # Tables with rows first (the 5-minute windows), then those still waiting for a window to close.
    for table in sorted(tables, key=lambda t: (t.rows == 0, t.name)):
        if not table.rows:
            lines.append(f"PostgreSQL {table.name}: no rows yet (written once the watermark passes a window's end)")
            continue
        newest = f"{table.newest_end:%H:%M}" if table.newest_end else "-"
        lines.append(f"PostgreSQL {table.name}: {table.rows:,} rows, {table.users} users; "
                     f"the newest window (ends {newest} UTC), busiest users:")
        lines += format_rows(table.columns, table.freshest)
    if any(not t.rows for t in tables):
        lines.append(f"  (1-hour windows close only after the hour turns: the next at {_next_hour_close(delay_s)} UTC, "
                     "if events are still arriving)")
    return lines


def _s3_lines(listing: S3Listing, settings: LocalSettings) -> list[str]:
    total = sum(listing.files.values())
    where = f"s3://{settings.bucket}/{settings.prefix}"
    if not total:
        return [f"S3 {where}: no Parquet files yet (files are committed at each checkpoint, every ~10 s)"]
    counts = ", ".join(f"{name} {n}" for name, n in sorted(listing.files.items()))
    lines = [f"S3 {where}: {total} Parquet files ({counts}); newest:"]
    lines += [f"    {modified:%H:%M:%S}  {key}" for modified, key in listing.newest]
    return lines


def _status_line(elapsed: float, seconds: float, sent: Sent, ui_url: str, state: str, delay_s: int) -> str:
    # The watermark as the demo's own events put it (another producer could push it further).
    watermark = (f"; watermark ~{sent.newest_event - timedelta(seconds=delay_s):%H:%M:%S} "
                 f"(newest event - {delay_s} s)" if sent.newest_event else "")
    return (f"[{datetime.now(timezone.utc):%H:%M:%S} UTC, {elapsed:.0f}/{seconds:.0f} s] job {state} ({ui_url})\n"
            f"sent {sent.records:,} records in {sent.batches} batches ({sent.duplicates} re-sends, "
            f"{sent.malformed} malformed){watermark}")


# --- the live view --------------------------------------------------------------------------------

class LiveView:
    """Sends a fresh batch and redraws the outputs every ``interval`` seconds."""

    def __init__(self, settings: LocalSettings, options: DemoOptions, ui_url: str, delay_s: int) -> None:
        self.settings, self.options, self.ui_url, self.delay_s = settings, options, ui_url, delay_s
        self.kinesis, self.s3 = aws.kinesis(settings), aws.s3(settings)
        self.sent = Sent()
        self.started_at = int(time.time())
        self.tty = sys.stdout.isatty()

    def _send(self, folder: Path, options: GeneratorOptions) -> GeneratorSummary:
        path = folder / "batch.jsonl"
        summary = generate(options, path)
        retag(path, f"demo{self.started_at}-{self.sent.batches}-")  # unique per run and batch
        stats = producer.produce(self.kinesis, self.settings.stream_name, path)
        self.sent.add(summary, stats.sent)
        return summary

    def send_first_batch(self, folder: Path) -> GeneratorSummary:
        return self._send(folder, _first_batch(self.options, seed=self.started_at % 1000))

    def run(self, folder: Path) -> None:
        started = time.monotonic()
        next_tick = started
        while True:
            if self.options.produce and self.options.seconds > 0:
                self._send(folder, _fresh_batch(self.options, self.sent.batches))
            self.draw(time.monotonic() - started)
            next_tick += self.options.interval
            if next_tick - started > self.options.seconds:
                return
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def draw(self, elapsed: float) -> None:
        states = "/".join(j.get("state", "?") for j in job.flink_jobs(self.ui_url)) or "?"
        lines = [_status_line(elapsed, self.options.seconds, self.sent, self.ui_url, states, self.delay_s), ""]
        try:
            lines += _feature_lines(feature_tables(self.settings, self.options.rows), self.delay_s)
        except psycopg.Error as exc:
            lines.append(f"PostgreSQL: {exc}".strip())
        lines.append("")
        try:
            lines += _s3_lines(s3_listing(self.s3, self.settings), self.settings)
        except Exception as exc:  # a busy emulator must not end the view; the next refresh retries
            lines.append(f"S3: {type(exc).__name__}: {exc}")
        # On a terminal, redraw in place; in a log or a pipe, append snapshots.
        print(("\033[H\033[2J" if self.tty else "\n") + "\n".join(lines), flush=True)


# --- the end of the demo --------------------------------------------------------------------------

def _parquet_sample(s3: Any, settings: LocalSettings, tables: list[FeatureTable]) -> list[str]:
    for table in sorted(tables, key=lambda t: (t.rows == 0, t.name)):
        files = data_files(s3, settings.bucket, folder(settings, table.name))
        if files:
            data = read_parquet(s3, settings.bucket, files[0][1])
            rows = data.slice(0, 5).to_pylist()
            lines = [f"Read back with pyarrow through boto3: s3://{settings.bucket}/{files[0][1]} "
                     f"({data.num_rows} rows), the first {len(rows)}:"]
            return lines + format_rows(data.column_names, [tuple(r.values()) for r in rows])
    return ["No feature Parquet file yet: a file is committed at the first checkpoint (~10 s) after its "
            "window closed"]


def _quarantine_lines(s3: Any, settings: LocalSettings) -> list[str]:
    reasons, read, files = quarantine_reasons(s3, settings)
    if not reasons:
        return ["Quarantine: nothing yet (malformed records land in _quarantine/ at the next checkpoint)"]
    detail = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    where = f"in the newest {read} of {files} files" if read < files else f"in {files} files"
    return [f"Quarantine (_quarantine/, never counted): {sum(reasons.values())} records {where}; {detail}"]


def summary_lines(settings: LocalSettings, options: DemoOptions, running: job.RunningJob, ui_url: str,
                  delay_s: int) -> list[str]:
    s3 = aws.s3(settings)
    lines = ["", *_parquet_sample(s3, settings, feature_tables(settings, options.rows)), "",
             *_quarantine_lines(s3, settings), ""]
    pg = settings.postgres
    where = (f"pid {running.pid}, log {running.log_file}" if running.ours
             else f"pid {running.pid}, started by hand: stop it where you started it")
    cfg = options.config_path
    lines += [
        f"The job keeps running in the background ({where}).",
        f"  Flink web UI      {ui_url}",
        f"  Look again        {_cli('demo --watch', cfg)}   (sends fresh events; add --no-produce to only look)",
        f"  Query features    psql -h {pg.host} -p {pg.port} -U {pg.user} {pg.database} "
        "-c 'SELECT * FROM user_activity_5m ORDER BY window_end DESC LIMIT 10'   (password: rds.password in the config)",
        f"  Feature vector    python -m jobs.reads get --config {_shown(cfg)} --user u-1   "
        "(what a model would get now: neutral values for windows without events, not stale rows)",
        f"  Fresh vector      python -m jobs.reads get --config {_shown(cfg)} --user u-1 --fresh   "
        "(the window ending now, including the last seconds' events)",
        f"  Parquet           s3://{settings.bucket}/{settings.prefix}/<feature>/dt=YYYYMMDD/hr=HH/ "
        f"(plus _raw/, _quarantine/) on {settings.s3_endpoint or 'AWS'}",
        f"  Stop the job      {_cli('stop-job', cfg)}   (or: make demo-stop)" if running.ours else
        "  Stop the job      Ctrl-C where you started it (stop-job and down leave it alone)",
        f"  Stop everything   {_cli('down', cfg)}   (stops a job the demo started too)",
        "",
        f"When rows appear: a window is written once the watermark (newest event time - {delay_s} s) passes its end.",
        "  5-minute windows slide every minute, so a new set closes each minute, but only while fresh events",
        "  arrive: after the demo stops sending, nothing new closes until more events come (`demo --watch`).",
        f"  1-hour windows appear only after the hour turns: the next can close at {_next_hour_close(delay_s)} UTC,",
        "  if events are still arriving then.",
    ]
    return lines


# --- entry point ----------------------------------------------------------------------------------

def run(options: DemoOptions, settings: LocalSettings, state: StateDirs = DEFAULT_STATE) -> int:
    try:
        return _run(options, settings, state)
    except KeyboardInterrupt:
        print(f"\ninterrupted; a job the demo started keeps running: `{_cli('stop-job', options.config_path)}` "
              "stops it")
        return 130


def _run(options: DemoOptions, settings: LocalSettings, state: StateDirs) -> int:
    delay_s = job_config.load(options.config_path, "run").get_int("events", "watermark.delay.seconds")
    running, fresh = _prepare(settings, state, options)
    with _step("waiting for the Flink job to run (a fresh start takes ~30 s)"):
        ui_url = _wait_for_job(running, state, options.config_path, fresh)
        print(f"    RUNNING; Flink web UI {ui_url}")
    view = LiveView(settings, options, ui_url, delay_s)
    with tempfile.TemporaryDirectory(prefix="deploy-local-demo-") as scratch:
        if options.produce and not options.watch:
            if fresh:
                with _step(f"sending {options.events} sample events (dated the last 10 minutes) to "
                           f"stream {settings.stream_name}"):
                    print(f"    {view.send_first_batch(Path(scratch)).describe()}")
            else:
                # A running job's watermark is already near now: a backlog dated the last 10 minutes
                # would mostly arrive late and be dropped, so only fresh batches are sent.
                print("==> the job was already running: sending fresh events only", flush=True)
        what = f"a fresh batch of ~{options.batch_events} events and " if options.produce else ""
        print(f"==> live for {options.seconds:.0f} s: {what}a refresh every {options.interval:.0f} s "
              "(Ctrl-C ends the view, not the job)", flush=True)
        try:
            view.run(Path(scratch))
        except KeyboardInterrupt:
            print("\nview stopped")
    print("\n".join(summary_lines(settings, options, running, ui_url, delay_s)))
    if not any(t.rows for t in feature_tables(settings, 1)):
        log.error("no feature rows reached PostgreSQL; see the job log (%s) and the Flink UI (%s)",
                  running.log_file or "where the job was started", ui_url)
        return 1
    return 0
