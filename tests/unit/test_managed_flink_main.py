"""The file Managed Flink runs, started as a file (`python jobs/managed_flink_main.py`), the way
`flink run --python` starts it: Python then puts jobs/ first on sys.path."""

import subprocess
import sys
from pathlib import Path

from jobs.definitions.config import PROPERTIES_FILE_OVERRIDE

ROOT = Path(__file__).resolve().parents[2]


def test_started_as_a_file_it_imports_and_names_the_missing_properties_file(tmp_path):
    missing = tmp_path / "application_properties.json"
    result = subprocess.run([sys.executable, str(ROOT / "jobs" / "managed_flink_main.py")], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", PROPERTIES_FILE_OVERRIDE: str(missing)},
                            capture_output=True, text=True, timeout=120)
    # jobs/postgres/credentials.py must not stand in for the standard library's secrets (numpy imports it).
    assert "Traceback" not in result.stderr, result.stderr
    assert f"{missing}: cannot read config" in result.stderr + result.stdout
    assert result.returncode == 2
