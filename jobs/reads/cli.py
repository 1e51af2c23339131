"""Feature vectors from the command line, and the retention of the online tables.

  python -m jobs.reads get   --config FILE --user ID [--as-of TIME] [--as-complete] [--fresh]
  python -m jobs.reads prune --config FILE [--days N] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional, Sequence

from jobs.definitions.config import ConfigError, load
from jobs.definitions.sql_catalog import SqlFileError
from jobs.postgres import credentials
from jobs.reads.serving import DEFAULT_SQL_DIR, FeatureReadError, OnlineStore


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time like 2026-01-01T12:00:00Z, got '{text}'") from None


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") + "Z"
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.reads", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="print users' feature vectors as JSON")
    get.add_argument("--user", action="append", required=True, help="a user_id (repeat for several)")
    get.add_argument("--as-of", type=_parse_time, help="ISO-8601 time (default: now)")
    get.add_argument("--group", action="append", help="only this feature group (repeatable)")
    get.add_argument("--as-complete", action="store_true",
                     help="use every window written by now, not only those served by --as-of")
    get.add_argument("--fresh", action="store_true",
                     help="the window ending now, from the fresh slices (includes the last seconds' events)")
    prune = commands.add_parser("prune", help="delete window rows older than the retention")
    prune.add_argument("--days", type=int, help="retention in days (default: rds.retention.days)")
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted")
    for command in (get, prune):
        command.add_argument("--config", type=Path, required=True, help="property-groups JSON (the job's config)")
        command.add_argument("--sql-dir", type=Path, default=DEFAULT_SQL_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config, "serve")
        with OnlineStore(config, args.sql_dir) as store:
            if args.command == "get":
                features = store.get_features(args.user, args.as_of, args.group, as_complete=args.as_complete,
                                              fresh=args.fresh)
                print(json.dumps(features, indent=2, default=_json_default))
            else:
                days = args.days or config.get_int("rds", "retention.days")
                deleted = store.prune(timedelta(days=days), dry_run=args.dry_run)
                verb = "would delete" if args.dry_run else "deleted"
                for table, count in deleted.items():
                    print(f"{table}: {verb} {count} row(s) with window_end older than {days} day(s)")
    except (ConfigError, SqlFileError, FeatureReadError, credentials.SecretError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0

