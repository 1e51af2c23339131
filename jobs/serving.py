"""Moved: the online reads are jobs.reads.serving, their command line ``python -m jobs.reads``."""

import sys

MOVED = ("jobs.serving moved: `from jobs.reads.serving import OnlineStore`; "
         "on the command line `python -m jobs.reads get|prune ...` (same options)")

if __name__ == "__main__":
    sys.exit(f"error: {MOVED}")
raise ImportError(MOVED)
