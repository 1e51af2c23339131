"""CPU seconds spent by processes, read from /proc (Linux): by a session, or by the processes
below one (the PyFlink gateway JVM below the Python process that started it).

The bench's consumers, its emulator and PostgreSQL each run in a session of their own, so the CPU
one of them used over a span is the difference of two readings of its session. A reading counts
live members (user + system time) and what exited members left in their parents (cutime +
cstime), so a JVM or a PostgreSQL backend that exits between the readings is still counted.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid_dir: Path) -> list[str] | None:
    stat = _stat(pid_dir)
    return stat[1] if stat else None


def session_of(pid: int) -> int | None:
    fields = _stat_fields(Path("/proc") / str(pid))
    return int(fields[3]) if fields else None  # field 6 of stat: the session id


def session_cpu_seconds(session: int) -> float:
    ticks = 0
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        fields = _stat_fields(pid_dir)
        if fields and int(fields[3]) == session:
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / TICKS_PER_S


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of the live processes ``pids``."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(Path("/proc") / str(pid))
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS_PER_S


def descendants(root: int) -> list[int]:
    """Processes below ``root``, at any depth."""
    parents: dict[int, int] = {}
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            fields = _stat_fields(pid_dir)
            if fields:
                parents[int(pid_dir.name)] = int(fields[1])  # field 4 of stat: the parent
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")  # HotSpot's compiler threads, as /proc names them


class ThreadCpu:
    """CPU seconds every thread of one process used since the first reading, read often enough
    that a thread which ends keeps what it used (HotSpot adds and removes compiler threads; a
    Flink task's threads end with its job). A thread born after the first reading counts from 0."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._first: dict[int, int] = {}  # tid -> ticks at the first reading that saw it
        self._last: dict[int, tuple[str, int]] = {}  # tid -> (name, ticks)

    def take(self) -> None:
        born = 0 if self._last else None  # the first reading is the baseline
        for tid, (name, ticks) in threads(self.pid).items():
            self._first.setdefault(tid, ticks if born is None else born)
            self._last[tid] = (name, ticks)

    def seconds(self) -> dict[int, tuple[str, float]]:
        """tid -> (name, CPU seconds since the first reading)."""
        return {tid: (name, (ticks - self._first[tid]) / TICKS_PER_S) for tid, (name, ticks) in self._last.items()}

    def seconds_of(self, names: tuple[str, ...]) -> float:
        """CPU seconds of the threads whose name starts with one of ``names``."""
        return sum(seconds for name, seconds in self.seconds().values() if name.startswith(names))


def _stat(pid_dir: Path) -> tuple[str, list[str]] | None:
    """The command name (field 2 of stat, in parentheses, may hold spaces) and the fields after it."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:  # exited while we looked
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def threads(pid: int) -> dict[int, tuple[str, int]]:
    """Every thread of ``pid``: its name as /proc gives it (15 characters at most) and its CPU ticks."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        stat = _stat(task)
        if stat:
            name, fields = stat
            found[int(task.name)] = (name, int(fields[11]) + int(fields[12]))  # utime, stime
    return found
