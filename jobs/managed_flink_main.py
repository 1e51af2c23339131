"""The file Managed Service for Apache Flink runs (run option `python`): no arguments, no `-m`.

The configuration comes only from /etc/flink/application_properties.json, so this is exactly
`python -m jobs.feature_job run` without --config.
"""

import sys
from pathlib import Path

# Started as a file (`flink run --python jobs/managed_flink_main.py`), Python puts this folder first
# on sys.path, where jobs/postgres/credentials.py would shadow the standard library's secrets (numpy imports it).
# The zip's root, which holds jobs/, udfs/ and sql/, goes there instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [entry for entry in sys.path if entry and Path(entry).resolve() != HERE]

from jobs.feature_job import main  # noqa: E402 - needs the path above

if __name__ == "__main__":
    sys.exit(main(["run"]))
