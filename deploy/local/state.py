"""Where the local services keep their state: one ignored folder, ``.local/`` at the repo root.

Deleting that folder (after ``down``) returns the machine to a clean slate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.local.config import REPO_ROOT


@dataclass(frozen=True)
class StateDirs:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files of the processes ``up`` started (and only those: ``down`` reads them)."""
        return self.root / "run"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    def ensure(self) -> "StateDirs":
        for folder in (self.logs, self.run):
            folder.mkdir(parents=True, exist_ok=True)
        return self


DEFAULT_STATE = StateDirs(REPO_ROOT / ".local")
