"""Entry point of the feature pipeline.

  python -m jobs.feature_job run      --config FILE          stream Kinesis -> PostgreSQL + S3 Parquet
  python -m jobs.feature_job validate --config FILE          compile every statement, run nothing
  python -m jobs.feature_job explain  --config FILE          print the optimized plan
  python -m jobs.feature_job migrate  --config FILE [--dry-run]  create/extend the PostgreSQL tables
  python -m jobs.feature_job fingerprint --config FILE       the stateful operators' IDs (upgrades)
  python -m jobs.feature_job backfill --config FILE --input PATH --output-dir DIR
                                                             same SQL over JSON lines or the raw archive
                                                             -> Parquet (--to-postgres: and PostgreSQL),
                                                             only the windows the input covers completely

On Managed Flink the job is started without arguments and reads its config from
/etc/flink/application_properties.json (see jobs/managed_flink_main.py).
Each command lives with its concern: run in jobs/operations/start.py, migrate in
jobs/operations/migrate.py, backfill in jobs/backfill/command.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from jobs.backfill.command import backfill
from jobs.definitions import config as job_config
from jobs.definitions import replay
from jobs.definitions.config import DEFAULT_SQL_DIR, Config, ConfigError
from jobs.definitions.schema import FeatureSchemaError
from jobs.definitions.sql_catalog import SqlFileError
from jobs.operations.migrate import migrate
from jobs.operations.start import run
from jobs.postgres import connection, credentials
from jobs.streaming import environment, pipeline

log = logging.getLogger("jobs.feature_job")

USER_ERRORS = (ConfigError, SqlFileError, FeatureSchemaError, environment.SetupError, credentials.SecretError,
               connection.DatabaseError, replay.ReplayError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.feature_job", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run the streaming job until stopped"),
        ("validate", "compile every statement against the real connectors; exit 0 or name file:line"),
        ("explain", "print the optimized plan (one source scan, one dedup shared by all features)"),
        ("backfill", "run the same SQL over bounded input (JSON lines or the raw archive) and write Parquet"),
        ("migrate", "create or extend the PostgreSQL feature tables derived from the feature SQL"),
        ("fingerprint", "print Flink's IDs of the stateful operators this SQL and config run with (JSON)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", type=Path, help="property-group JSON (default: Managed Flink's file)")
        command.add_argument("--sql-dir", type=Path, default=DEFAULT_SQL_DIR, help="folder of SQL files")
        if name == "backfill":
            command.add_argument("--input", type=Path, required=True, help="JSON-lines file or folder of them, or the raw archive (_raw/ folder)")
            command.add_argument("--output-dir", required=True,
                                 help="where Parquet is written: a folder, or the job's s3://BUCKET/PREFIX to fill "
                                      "a new feature's history in place (with --feature and --until)")
            command.add_argument("--feature", action="append", metavar="NAME",
                                 help="only this feature group (repeatable); the fixed outputs (quarantine, late) "
                                      "are then not written: the job wrote them")
            command.add_argument("--until", type=_utc_time, metavar="TIME",
                                 help="write only windows ending at or before TIME, e.g. a new group's cut-over, "
                                      "after which the job writes its windows itself")
            command.add_argument("--to-postgres", action="store_true",
                                 help="also upsert the windows into the rds group's PostgreSQL tables (corrections)")
            command.add_argument("--include-partial-windows", action="store_true",
                                 help="also write the first and last windows, which the input covers only in part "
                                      "(right when the input is the whole history)")
            command.add_argument("--from", dest="write_from", type=_utc_time, metavar="TIME",
                                 help="write only windows starting at or after TIME (e.g. 2026-01-01T01:00:00Z), "
                                      "for input that starts earlier to warm up dedup and the watermark")
        if name == "run":
            command.add_argument("--fresh", action="store_true",
                                 help="ignore retained checkpoints in job.checkpoint.dir and start over")
            command.add_argument("--dry-run", action="store_true",
                                 help="print how the job would start (resume, replay upgrade, refusal) and exit")
            command.add_argument("--allow-non-restored-state", action="store_true",
                                 help="expert: restore the checkpoint even though the SQL changed its operators "
                                      "(state that maps to no operator is dropped) instead of a replay upgrade")
        if name == "migrate":
            command.add_argument("--dry-run", action="store_true", help="print the statements, change nothing")
    return parser


def _utc_time(text: str) -> datetime:
    """An ISO-8601 UTC time ending in Z, as naive UTC (like the feature rows' window bounds)."""
    try:
        moment = datetime.fromisoformat(text.removesuffix("Z") + "+00:00") if text.endswith("Z") else None
    except ValueError:
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO-8601 UTC time like 2026-01-01T01:00:00Z")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def validate(args: argparse.Namespace, config: Config) -> int:
    built = pipeline.streaming(config, args.sql_dir, "not-fetched-for-validation", managed=args.managed)
    built.statement_set.explain()  # plans every INSERT: connector factories check their options
    names = ", ".join(f.name for f in built.features)
    print(f"OK: {len(built.features)} feature group(s) ({names}), {len(built.sink_tables)} derived sink(s)")
    return 0


def explain(args: argparse.Namespace, config: Config) -> int:
    print(pipeline.streaming(config, args.sql_dir, "not-fetched-for-explain", managed=args.managed)
          .statement_set.explain())
    return 0


def fingerprint(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(pipeline.fingerprint_of(config, args.sql_dir).to_json(), indent=2))
    return 0


COMMANDS = {"run": run, "validate": validate, "explain": explain, "backfill": backfill, "migrate": migrate,
            "fingerprint": fingerprint}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # PyFlink's import of Apache Beam lowers the root logger to WARNING; keep the job's own at INFO.
    logging.getLogger("jobs").setLevel(logging.INFO)
    args = _parser().parse_args(argv)
    # Started without --config where Managed Flink's properties file exists: the job runs there.
    args.managed = args.config is None and job_config.managed_flink_config().exists()
    try:
        config = job_config.load(args.config, args.command)
        return COMMANDS[args.command](args, config)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
