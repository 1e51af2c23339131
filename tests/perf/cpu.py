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
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:  # exited while we looked
        return None
    # The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    return text[text.rindex(")") + 2:].split()


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


class JitCpu:
    """CPU seconds the JIT compiler threads of some processes used since the first reading,
    counted so a compiler thread that ends (HotSpot adds and removes them) keeps what it used."""

    def __init__(self) -> None:
        self._last: dict[int, int] = {}
        self._ticks = 0

    def read(self, pids: list[int]) -> float:
        for pid in pids:
            for tid, (name, ticks) in threads(pid).items():
                if name.startswith(JIT_THREADS):
                    self._ticks += ticks - self._last.get(tid, ticks)
                    self._last[tid] = ticks
        return self._ticks / TICKS_PER_S


def threads(pid: int) -> dict[int, tuple[str, int]]:
    """Every thread of ``pid``: its name as /proc gives it (15 characters at most) and its CPU ticks."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            text = (task / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        fields = text[text.rindex(")") + 2:].split()
        found[int(task.name)] = (text[text.index("(") + 1:text.rindex(")")], int(fields[11]) + int(fields[12]))
    return found
