"""The file Managed Service for Apache Flink runs (run option `python`): no arguments, no `-m`.

The configuration comes only from /etc/flink/application_properties.json, so this is exactly
`python -m jobs.feature_job run` without --config.
"""

import sys
from pathlib import Path

# The application zip's root holds jobs/, udfs/ and sql/; make it importable however we are started.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.feature_job import main  # noqa: E402 - needs the path above

if __name__ == "__main__":
    sys.exit(main(["run"]))
