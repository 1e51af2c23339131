"""Start a background process with a pid file, check it, stop it: only ever the pid we recorded."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_running(pid: int, marker: str | None = None) -> bool:
    """True if ``pid`` is alive (and, if given, its command line contains ``marker``).

    The marker guards against a recycled pid: after a reboot the number may belong to anything.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if marker is None or not Path("/proc").is_dir():
        return True
    return marker in _cmdline(pid)


def recorded_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is still ours and alive; a stale file is removed."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    if is_running(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def stop_recorded(pid_files: Iterable[Path], marker: str, *, timeout: float = 10.0) -> list[int]:
    """Stop the live processes ``pid_files`` record (still ``marker``'s) and remove the files;
    returns the pids stopped."""
    stopped = []
    for pid_file in sorted(pid_files):
        pid = recorded_pid(pid_file, marker)
        if pid is not None:
            stop(pid, timeout=timeout)
            stopped.append(pid)
        pid_file.unlink(missing_ok=True)
    return stopped


def spawn(cmd: Sequence[str], *, pid_file: Path, log_file: Path, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> int:
    """Start ``cmd`` detached from this terminal (own session), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True)
    pid_file.write_text(f"{proc.pid}\n")
    log.info("started `%s` (pid %d, log %s)", " ".join(cmd), proc.pid, log_file)
    return proc.pid


def stop(pid: int, *, timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds.

    ``group``: signal the whole process group led by ``pid`` (``spawn`` starts each command in its
    own session), e.g. a job's Python driver together with its JVM.
    """
    def send(sig: int) -> None:
        (os.killpg if group else os.kill)(pid, sig)

    def alive() -> bool:
        # Reap it if it is our child (tests start and stop in one process); else just probe.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid and not group:
                return False
        except ChildProcessError:
            pass
        return _group_alive(pid) if group else is_alive(pid)

    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(0.1)
    log.warning("%s %d ignored SIGTERM for %.0f s; sending SIGKILL", "group" if group else "pid", pid, timeout)
    try:
        send(signal.SIGKILL)
    except ProcessLookupError:
        pass
    alive()  # reap


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(pid: int) -> bool:
    """Running and not a zombie (an exited child nobody has reaped yet)."""
    return is_running(pid) and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
