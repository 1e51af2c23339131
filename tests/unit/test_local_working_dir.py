"""The local MiniCluster's working folder (a jar copy per job) never outlives its process."""

import os
import subprocess
import sys

from jobs.streaming.environment import working_dir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_folders_of_gone_processes_are_removed_and_live_ones_kept(tmp_path):
    gone = tmp_path / str(_dead_pid())
    (gone / "blobStorage").mkdir(parents=True)
    (gone / "blobStorage" / "blob_p-jar").write_bytes(b"x" * 1024)
    alive = tmp_path / str(os.getppid())
    alive.mkdir()
    other = tmp_path / "notes"
    other.mkdir()

    mine = working_dir(tmp_path)

    assert mine == tmp_path / str(os.getpid()) and mine.is_dir()
    assert not gone.exists()
    assert alive.is_dir() and other.is_dir()
