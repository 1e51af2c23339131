"""The streaming job as a background process: start, find, stop, with a pid file per config.

``python -m jobs.feature_job run --config C`` runs in its own session (its process group holds the
Python driver and the JVM it launches), output appended to ``.local/logs/job.log``, pid in
``.local/run/job.pid``. A config other than the default one gets its own pair of files
(``job-<name>-<hash>.*``), so a test's job beside a user's demo job never touches the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import process
from deploy.local.config import DEFAULT_CONFIG, REPO_ROOT
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)

JOB_MODULE = "jobs.feature_job"
UI_PORTS = range(8081, 8100)  # jobs/streaming/environment.py binds the first free one of 8081-8099
STOP_TIMEOUT_S = 20.0


class JobError(RuntimeError):
    pass


@dataclass(frozen=True)
class JobFiles:
    pid_file: Path
    log_file: Path


@dataclass(frozen=True)
class RunningJob:
    pid: int
    ours: bool  # started by the demo (pid file); False: started by hand, never stopped by us
    log_file: Path | None


def files_for(state: StateDirs, config_path: Path) -> JobFiles:
    config_path = config_path.resolve()
    if config_path == DEFAULT_CONFIG.resolve():
        name = "job"
    else:
        digest = hashlib.sha1(str(config_path).encode()).hexdigest()[:8]
        name = f"job-{config_path.stem}-{digest}"
    return JobFiles(state.run / f"{name}.pid", state.logs / f"{name}.log")


# --- finding the job ------------------------------------------------------------------------------

def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _runs_config(pid: int, config_path: Path) -> bool:
    """True if ``pid`` is ``jobs.feature_job run --config <config_path>`` (relative paths resolved
    against that process's working directory)."""
    args = _proc_cmdline(pid)
    if JOB_MODULE not in args or "run" not in args or "--config" not in args[:-1]:
        return False
    given = Path(args[args.index("--config") + 1])
    if not given.is_absolute():
        try:
            given = Path(os.readlink(f"/proc/{pid}/cwd")) / given
        except OSError:
            return False
    return given.resolve() == config_path.resolve()


def _started_by_hand(config_path: Path) -> int | None:
    """A job on this config started outside the demo (a developer's terminal): reuse it, never kill it."""
    if not Path("/proc").is_dir():
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _runs_config(int(entry.name), config_path):
            return int(entry.name)
    return None


def find(state: StateDirs, config_path: Path) -> RunningJob | None:
    files = files_for(state, config_path)
    pid = process.recorded_pid(files.pid_file, JOB_MODULE)
    if pid is not None:
        return RunningJob(pid, ours=True, log_file=files.log_file)
    other = _started_by_hand(config_path)
    return RunningJob(other, ours=False, log_file=None) if other is not None else None


# --- start / stop ---------------------------------------------------------------------------------

def start(state: StateDirs, config_path: Path) -> RunningJob:
    """Start the job unless one already runs on this config (then that one is returned)."""
    running = find(state, config_path)
    if running is not None:
        return running
    state.ensure()
    files = files_for(state, config_path)
    pid = process.spawn([sys.executable, "-m", JOB_MODULE, "run", "--config", str(config_path.resolve())],
                        pid_file=files.pid_file, log_file=files.log_file, cwd=REPO_ROOT)
    return RunningJob(pid, ours=True, log_file=files.log_file)


def _stop_group(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the job's process group (driver + JVM), SIGKILL what is left after ``timeout``.

    The group is the session ``process.spawn`` created for this pid, so nothing else is in it.
    """
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    # Not a group we created (a job started by hand): signal the pid alone.
    process.stop(pid, timeout=timeout, group=pgid == pid)


def stop(state: StateDirs, config_path: Path) -> int | None:
    """Stop the job the demo started on this config; a job started by hand is left alone."""
    files = files_for(state, config_path)
    pid = process.recorded_pid(files.pid_file, JOB_MODULE)
    if pid is not None:
        _stop_group(pid)
        log.info("stopped job pid %d", pid)
    files.pid_file.unlink(missing_ok=True)
    return pid


def stop_all(state: StateDirs) -> list[int]:
    """Every job the demo started (any config): ``down`` calls this before the services go."""
    stopped = []
    for pid_file in sorted(state.run.glob("job*.pid")):
        pid = process.recorded_pid(pid_file, JOB_MODULE)
        if pid is not None:
            _stop_group(pid)
            stopped.append(pid)
            log.info("stopped job pid %d", pid)
        pid_file.unlink(missing_ok=True)
    return stopped


# --- the Flink web UI (REST) of a running job ------------------------------------------------------

def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces or parentheses; the fields after the last ')' do not.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _listening_ports(inodes: set[str]) -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _get_json(url: str, timeout: float = 1.5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def web_ui(pid: int) -> str | None:
    """The URL of the Flink web UI of the job process ``pid``, found from the ports its JVM
    listens on (the UI takes the first free port of 8081-8099, so it cannot be guessed)."""
    if not Path("/proc").is_dir():
        return None
    inodes: set[str] = set()
    for member in _descendants(pid):
        inodes |= _socket_inodes(member)
    for port in sorted(p for p in _listening_ports(inodes) if p in UI_PORTS):
        url = f"http://localhost:{port}"
        try:
            if "flink-version" in _get_json(f"{url}/config"):
                return url
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return None


def flink_jobs(ui_url: str) -> list[dict[str, Any]]:
    """The Flink jobs of that UI: ``[{"name", "state", "start-time", ...}]``."""
    try:
        return list(_get_json(f"{ui_url}/jobs/overview").get("jobs", []))
    except (urllib.error.URLError, OSError, ValueError):
        return []


def wait_until_running(job: RunningJob, timeout: float) -> str:
    """Wait until the Flink job reports RUNNING; returns the web UI URL.

    Fails early, with the end of the job's log, if the process exits.
    """
    deadline = time.monotonic() + timeout
    ui_url: str | None = None
    while time.monotonic() < deadline:
        # No command-line marker here: right after the fork the child may not have exec'd yet,
        # and this pid was just spawned by us, so it cannot be a recycled one.
        if not process.is_alive(job.pid):
            raise JobError(f"the job process exited at start{_log_tail(job.log_file)}")
        ui_url = ui_url or web_ui(job.pid)
        if ui_url and any(j.get("state") == "RUNNING" for j in flink_jobs(ui_url)):
            return ui_url
        time.sleep(1.0)
    states = [j.get("state") for j in flink_jobs(ui_url)] if ui_url else "no web UI yet"
    raise JobError(f"the job did not reach RUNNING within {timeout:.0f} s (Flink says: {states})"
                   f"{_log_tail(job.log_file)}")


def _log_tail(log_file: Path | None, lines: int = 15) -> str:
    if log_file is None or not log_file.is_file():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n  " + "\n  ".join(tail)
