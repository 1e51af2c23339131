"""``python -m deploy.local upgrade``: ship changed feature SQL to the demo's running job.

The job decides itself how to take over (jobs/feature_job.py run: resume the checkpoint when the
stateful operators are unchanged, else a replay upgrade); this asks it first with ``run --dry-run``
so that a refused upgrade (stream retention, no progress marker yet) stops nothing, then creates
new tables (migrate), stops the demo's job and starts the new version in its place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy.local import job
from deploy.local.config import REPO_ROOT
from deploy.local.state import StateDirs

JOB_START_TIMEOUT_S = 240.0


class UpgradeError(RuntimeError):
    pass


def _job_command(command: str, config_path: Path, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "jobs.feature_job", command, "--config", str(config_path), *extra],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise UpgradeError(f"`{command} {' '.join(extra)}` refused (nothing was stopped):\n    "
                           + "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-5:]))
    return result.stdout


def upgrade(state: StateDirs, config_path: Path) -> list[str]:
    """Checks, migrate, stop, start; returns what the new job printed about its start."""
    running = job.find(state, config_path)
    if running is not None and not running.ours:
        raise UpgradeError(f"the job on {config_path} was started by hand (pid {running.pid}); stop it (Ctrl-C) and run "
                           f"`python -m jobs.feature_job run --config {config_path}` yourself")
    plan = [line for line in _job_command("run", config_path, "--dry-run").splitlines() if line.startswith("run: ")]
    _job_command("migrate", config_path)
    if running is not None:
        job.stop(state, config_path)
    started = job.start(state, config_path)
    job.wait_until_running(started, JOB_START_TIMEOUT_S)
    chosen = [line for line in started.log_file.read_text(errors="replace").splitlines() if line.startswith("run: ")]
    return plan[-1:] + chosen[-1:]
