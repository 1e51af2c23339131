"""CPU seconds spent by a process and everything in its session, read from /proc (Linux).

The bench's consumers, its emulator and PostgreSQL each run in a session of their own, so the CPU
one of them used over a span is the difference of two readings of its session. A reading counts
live members (user + system time) and what exited members left in their parents (cutime +
cstime), so a JVM or a PostgreSQL backend that exits between the readings is still counted.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


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
    return ticks / _TICKS_PER_S
