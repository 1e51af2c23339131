"""Ship a changed SQL tree to a job that has run before: restore when safe, else replay (jobs/definitions/replay.py).

What each sink already holds comes from the progress markers, PostgreSQL feature_progress and the
committed Parquet markers under <output.path>/_progress/, checked against the rows each sink
holds: a window counts as written only when its rows are all there. Parquet files commit on
checkpoints (compacted feature files after their compaction), and with parallel window
operators a checkpoint can commit some of a window's rows before its marker.
Each group has one cut (jobs/definitions/replay.py): ``trim_parquet`` removes committed rows and markers of
windows past it, so that the new version writes each of those windows once, whole, with the same
logic as PostgreSQL.

Locally the fingerprint and cut-over of the last run live in a state file next to the checkpoints
(``<job.checkpoint.dir>/pipeline.json``); on Managed Flink, deploy keeps them in the runtime
properties (property group ``replay``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.definitions import replay
from jobs.definitions.config import Config
from jobs.definitions.feature_specs import load_specs
from jobs.definitions.schema import PROGRESS_TABLE
from jobs.streaming.plan_fingerprint import Fingerprint

log = logging.getLogger(__name__)

STATE_FILE = "pipeline.json"


@dataclass(frozen=True)
class LocalState:
    fingerprint: Fingerprint
    cut: replay.Cut


def state_path(config: Config) -> Path | None:
    root = config.checkpoint_uri()
    return Path(urlparse(root).path) / STATE_FILE if root and root.startswith("file:") else None


def read_state(config: Config) -> LocalState | None:
    path = state_path(config)
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    return LocalState(Fingerprint.from_json(data["fingerprint"]), replay.Cut.from_properties(data["replay"]))


def write_state(config: Config, state: LocalState) -> None:
    path = state_path(config)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"fingerprint": state.fingerprint.to_json(), "replay": state.cut.to_properties()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


def hold_lock(config: Config) -> None:
    """One job per checkpoint folder: a second one would resume or replay under the first's feet.
    The lock is this process's pid in the folder; a lock of a process that is gone is taken over."""
    path = state_path(config)
    if path is None:
        return
    lock = path.with_name("job.pid")
    if lock.is_file():
        pid = int(lock.read_text().strip() or 0)
        if pid and pid != os.getpid() and Path(f"/proc/{pid}").exists():
            raise replay.ReplayError(f"another job (pid {pid}) runs on job.checkpoint.dir {path.parent}; stop it "
                                     "first (`make demo-stop`, or Ctrl-C in its terminal)")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(str(os.getpid()))
    atexit.register(lambda: lock.unlink(missing_ok=True) if lock.read_text().strip() == str(os.getpid()) else None)


def _whole_until(markers: Iterable[tuple[datetime, int, int]], slide: timedelta) -> datetime | None:
    """The newest window end up to which every window is whole, from (window_end, row_count, rows
    present) oldest first: the first window missing rows and all after it are written again."""
    until = None
    for end, expected, present in markers:
        if present < expected:
            return until or end - slide
        until = end
    return until


def postgres_until(connection, windows: Mapping[str, replay.Window], recent: int = 500) -> dict[str, datetime]:
    """Per group, the newest window end up to which PostgreSQL holds every window whole (groups
    without a marker are absent). A marker is flushed at once and its window's rows up to
    rds.flush.interval.ms later, so a stop can leave markers whose rows never arrived."""
    from psycopg import sql  # deploy hosts and local runs have it; the job on Managed Flink never comes here

    found = {}
    for group, window in windows.items():
        rows = connection.execute(
            sql.SQL("SELECT p.window_end, p.row_count, (SELECT count(*) FROM {t} t WHERE t.window_end = p.window_end "
                    "AND t.window_start = p.window_start) FROM {p} p WHERE p.feature_group = %s "
                    "ORDER BY p.window_end DESC LIMIT %s").format(t=sql.Identifier(group), p=sql.Identifier(PROGRESS_TABLE)),
            (group, recent)).fetchall()
        until = _whole_until(reversed(rows), window.slide)
        if until is not None:
            found[group] = until
    return found


def _committed_files(filesystem: pafs.FileSystem, folder: str) -> list[str]:
    """Committed Parquet files under ``folder`` (in-progress files start with '.', markers with '_')."""
    if filesystem.get_file_info(folder).type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(folder, recursive=True)
    return sorted(info.path for info in filesystem.get_file_info(selector)
                  if info.type == pafs.FileType.File and not info.base_name.startswith((".", "_")))


_HOUR_PARTITION = re.compile(r"/dt=(\d{8})/hr=(\d{2})/")


def _committed_files_from(filesystem: pafs.FileSystem, folder: str, first_start: datetime) -> list[str]:
    """Committed files under ``folder`` except those in hour partitions that end by ``first_start``."""
    def hour_ends_before(path: str) -> bool:
        partition = _HOUR_PARTITION.search(path)
        return bool(partition) and (datetime.strptime("".join(partition.groups()), "%Y%m%d%H")
                                    + timedelta(hours=1) <= first_start)

    return [path for path in _committed_files(filesystem, folder) if not hour_ends_before(path)]


def _read_committed(filesystem: pafs.FileSystem, folder: str, columns: list[str],
                    first_start: datetime = datetime.min) -> list[dict]:
    """Rows of the committed files under ``folder``, skipping hour partitions that end by ``first_start``."""
    rows = []
    for path in _committed_files_from(filesystem, folder, first_start):
        rows += pq.read_table(path, columns=columns, filesystem=filesystem).to_pylist()
    for row in rows:
        for column in ("window_start", "window_end"):
            if column in row:
                row[column] = row[column].replace(tzinfo=None)
    return rows


def parquet_until(filesystem: pafs.FileSystem, root: str, windows: Mapping[str, replay.Window],
                  recent: int = 500) -> dict[str, datetime]:
    """Per group, the newest window end up to which the Parquet copy holds every window whole
    (groups without a marker are absent). Markers commit on a checkpoint, but compacted feature
    files only once their compaction has run after it: a stop in between leaves committed markers
    whose rows never became visible."""
    found = {}
    for group, window in windows.items():
        markers = sorted(_read_committed(filesystem, f"{root}/_progress/{group}",
                                         ["window_start", "window_end", "row_count"]),
                         key=lambda marker: marker["window_end"])[-recent:]
        if not markers:
            continue
        rows = _read_committed(filesystem, f"{root}/{group}", ["window_start", "window_end"], markers[0]["window_start"])
        present = Counter((row["window_start"], row["window_end"]) for row in rows)
        until = _whole_until(((m["window_end"], m["row_count"], present[(m["window_start"], m["window_end"])])
                              for m in markers), window.slide)
        if until is not None:
            found[group] = until
    return found


def trim_parquet(filesystem: pafs.FileSystem, folder: str, until: datetime, first_start: datetime) -> int:
    """Drop committed rows under ``folder`` whose window ends after ``until``; returns rows removed.
    Such windows start at or after ``first_start``: earlier hour partitions are left unread."""
    removed = 0
    for path in _committed_files_from(filesystem, folder, first_start):
        with filesystem.open_input_file(path) as source:
            table = pq.ParquetFile(source).read()  # the file alone: no partition columns added
        keep = pc.less_equal(pc.cast(table["window_end"], "timestamp[ms]"), pa.scalar(until, type=pa.timestamp("ms")))
        kept = table.filter(keep)
        if kept.num_rows == table.num_rows:
            continue
        removed += table.num_rows - kept.num_rows
        if kept.num_rows:
            pq.write_table(kept, path, filesystem=filesystem, coerce_timestamps="ms")
        else:
            filesystem.delete_file(path)
    return removed


def stream_retention_hours(config: Config) -> int:
    import boto3  # the local job needs it only here; Managed Flink's deploy checks retention itself

    endpoint = config.get("source", "aws.endpoint")
    client = boto3.client("kinesis", region_name=config.get("source", "aws.region"), endpoint_url=endpoint or None)
    summary = client.describe_stream_summary(StreamName=config.get("source", "stream.name"))
    return int(summary["StreamDescriptionSummary"]["RetentionPeriodHours"])


def windows_of(config: Config, sql_dir: Path) -> dict[str, replay.Window]:
    return {name: replay.Window(spec.slide, spec.size) for name, spec in load_specs(sql_dir, config).items()}


def prepare(config: Config, sql_dir: Path, old_groups: Iterable[str], new: Fingerprint, *, trim: bool) -> replay.Cut:
    """The cut-over for ``new`` after a version that ran ``old_groups``, from what each sink holds;
    checks the stream keeps records from its start. ``trim``: the old version has stopped, so Parquet
    rows and markers committed past their group's cut can go (they are rewritten whole)."""
    import psycopg

    from jobs.postgres import connection, credentials
    from jobs.reads.training import filesystem_and_path

    windows = windows_of(config, sql_dir)
    groups = sorted(set(old_groups) & set(windows))
    database = connection.connection_kwargs(config, credentials.jdbc_password(config))
    try:
        with psycopg.connect(**database, connect_timeout=10) as db:
            in_postgres = postgres_until(db, {group: windows[group] for group in groups})
    except psycopg.Error as error:
        raise replay.ReplayError(f"cannot read the progress markers in PostgreSQL at {database['host']}:"
                                 f"{database['port']}/{database['dbname']} (property group 'rds'), which the "
                                 f"upgrade needs: {str(error).strip()}") from None
    filesystem, root = filesystem_and_path(config.get("output", "path"), config, None)
    in_parquet = parquet_until(filesystem, root, {group: windows[group] for group in groups})
    existing = {group: {"postgres": in_postgres.get(group), "parquet": in_parquet.get(group)} for group in groups}
    skew = timedelta(seconds=config.get_int("events", "future.skew.seconds"))
    cut = replay.plan(new.digest, windows, existing, datetime.now(timezone.utc).replace(tzinfo=None), skew)
    replay.check_retention(cut.start, stream_retention_hours(config), config.get("source", "stream.name"))
    for group in groups if trim else ():
        until = cut.writes_after(group)
        first_start = until + windows[group].slide - windows[group].size
        removed = trim_parquet(filesystem, f"{root}/{group}", until, first_start)
        markers = trim_parquet(filesystem, f"{root}/_progress/{group}", until, first_start)
        if removed or markers:
            log.info("%s: removed %d committed Parquet row(s) and %d marker(s) of windows after %s (the new version "
                     "writes those windows whole, with PostgreSQL's logic)", group, removed, markers, until)
    return cut


def describe(cut: replay.Cut, new_groups: Iterable[str] = ()) -> str:
    """What the replay does, and the command that fills each new group's history."""
    iso = "%Y-%m-%dT%H:%M:%SZ"
    parts = [f"{group} after {moment:{iso}}" for group, moment in sorted(cut.until.items())]
    text = f"reading the stream again from {cut.start:{iso}}; writing {', '.join(parts)}"
    for group in sorted(new_groups):
        text += (f"; {group}'s history: `python -m jobs.feature_job backfill --config FILE --input <_raw folder> "
                 f"--feature {group} --until {cut.writes_after(group):{iso}} --output-dir <output.path> "
                 "--to-postgres` (README, Upgrades)")
    return text
