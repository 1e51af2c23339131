"""Modules that moved when jobs/ became packages say where they went, on import and on `python -m`."""

import importlib
import subprocess
import sys

import pytest

from jobs.definitions.config import PROJECT_ROOT


@pytest.mark.parametrize("module, new_home", [("jobs.serving", "jobs.reads.serving"),
                                              ("jobs.training", "jobs.reads.training")])
def test_an_import_of_a_moved_module_names_its_new_home(module, new_home):
    with pytest.raises(ImportError, match=new_home):
        importlib.import_module(module)


def test_the_old_serving_command_names_the_new_one():
    result = subprocess.run([sys.executable, "-m", "jobs.serving", "get", "--user", "u-1"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "python -m jobs.reads get|prune" in result.stderr
