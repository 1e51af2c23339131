"""The performance report: what machine the figures come from, then each section's Markdown."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPORT = Path(__file__).resolve().parents[2] / "target" / "perf" / "report.md"


def _first_line(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(key, 1)[1].strip(" :=\t\"")
    except OSError:
        pass
    return None


def _command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return ((done.stderr or done.stdout).strip().splitlines() or ["?"])[0]


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _postgres() -> str:
    try:
        from deploy.local.postgres import PostgresError, find_bin_dir
        return _command_version([str(find_bin_dir() / "postgres"), "--version"])
    except (ImportError, PostgresError):
        return "not found"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine() -> str:
    memory_kb = _first_line("/proc/meminfo", "MemTotal")
    memory = f"{int(memory_kb.split()[0]) / 1024 ** 2:.1f} GiB" if memory_kb else "?"
    rows = [
        ("CPU", _first_line("/proc/cpuinfo", "model name") or platform.processor() or "?"),
        ("Cores (logical)", str(os.cpu_count())),
        ("RAM", memory),
        ("OS", f"{_first_line('/etc/os-release', 'PRETTY_NAME=') or platform.system()}, kernel {platform.release()}"),
        ("Java", _command_version(["java", "-version"])),
        ("Python", platform.python_version()),
        ("Flink (PyFlink)", _package("apache-flink")),
        ("Kinesis + S3 endpoint", f"moto {_package('moto')} (deploy/local emulator)"),
        ("PostgreSQL", _postgres()),
        ("Load average at the start", load_average()),
    ]
    return "\n".join(["## Machine", "", "| | |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows], ""])


def assemble(command: str, sections: list[str], started: datetime, machine_section: str) -> str:
    minutes = (datetime.now(timezone.utc) - started).total_seconds() / 60
    header = ["# Performance report", "",
              f"`{command}`, started {started:%Y-%m-%d %H:%M} UTC, took {minutes:.1f} min. "
              "Figures only: nothing here is asserted.", ""]
    footer = ["", f"Load average at the end: {load_average()}.", ""]
    return "\n".join(header) + "\n" + machine_section + "\n" + "\n".join(sections) + "\n".join(footer)


def write(text: str, path: Path = REPORT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
