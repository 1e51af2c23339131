"""``python -m jobs.reads get|prune`` (jobs/reads/cli.py)."""

import sys

from jobs.reads.cli import main

sys.exit(main())
