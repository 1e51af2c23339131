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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from jobs import config as job_config
from jobs import (backfill_input, backfill_windows, counters, environment, kinesis_shards, pipeline,
                  plan_fingerprint, rds, replay, secrets, upgrade)
from jobs.config import Config, ConfigError
from jobs.feature_specs import load_specs
from jobs.sinks import FeatureSchema, FeatureSchemaError
from jobs.sql_catalog import Catalog, SqlFileError, load_catalog

log = logging.getLogger("jobs.feature_job")

DEFAULT_SQL_DIR = environment.PROJECT_ROOT / "sql"
USER_ERRORS = (ConfigError, SqlFileError, FeatureSchemaError, environment.SetupError, secrets.SecretError,
               rds.MigrationError, replay.ReplayError)


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


def _managed(args: argparse.Namespace) -> bool:
    return args.config is None and job_config.managed_flink_config().exists()


def _streaming_pipeline(args: argparse.Namespace, config: Config, password: str) -> pipeline.Pipeline:
    return streaming_pipeline(config, args.sql_dir, password, managed=_managed(args))


def streaming_pipeline(config: Config, sql_dir: Path, password: str, *, managed: bool = False) -> pipeline.Pipeline:
    """The streaming job this config and SQL give, built (not submitted)."""
    t_env = environment.create(config, managed=managed, streaming_source=True)
    return pipeline.build(t_env, load_catalog(sql_dir, "kinesis", config), config,
                          output_root=config.get("output", "path"), jdbc_password=password, streaming_commit=True)


def validate(args: argparse.Namespace, config: Config) -> int:
    built = _streaming_pipeline(args, config, password="not-fetched-for-validation")
    built.statement_set.explain()  # plans every INSERT: connector factories check their options
    names = ", ".join(f.name for f in built.features)
    print(f"OK: {len(built.features)} feature group(s) ({names}), {len(built.sink_tables)} derived sink(s)")
    return 0


def explain(args: argparse.Namespace, config: Config) -> int:
    built = _streaming_pipeline(args, config, password="not-fetched-for-explain")
    print(built.statement_set.explain())
    return 0


def fingerprint_of(config: Config, sql_dir: Path) -> plan_fingerprint.Fingerprint:
    """The fingerprint of the streaming job this config and SQL give (deploy compares it too)."""
    return streaming_pipeline(config, sql_dir, password="not-fetched-for-fingerprint").fingerprint()


def fingerprint(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(fingerprint_of(config, args.sql_dir).to_json(), indent=2))
    return 0


def run(args: argparse.Namespace, config: Config) -> int:
    password = secrets.sink_password(config)
    if _managed(args):  # Managed Flink restores its snapshot (or not) itself; deploy set the cut-over
        built = _streaming_pipeline(args, config, password)
        _check_tables(args, config, built.features + built.fresh)
        kinesis_shards.check_stream(config)  # each open shard needs a source subtask of its own
        return _execute(args, built)
    if not args.dry_run:
        upgrade.hold_lock(config)
    start = _local_start(args, config, password)
    print(f"run: {start.reason}", flush=True)
    if args.dry_run:
        return 0
    if start.forget_checkpoints:
        environment.forget_checkpoints(config)
    upgrade.write_state(config, upgrade.LocalState(start.fingerprint, start.cut))
    built = _streaming_pipeline(args, config.with_cut(start.cut), password) if start.rebuild else start.built
    if start.restore_from:
        built.t_env.get_config().set("execution.savepoint.path", start.restore_from)
    return _execute(args, built)


@dataclass
class _Start:
    """How a local run starts, and why (printed)."""

    reason: str
    built: pipeline.Pipeline
    fingerprint: plan_fingerprint.Fingerprint
    cut: replay.Cut
    restore_from: str | None = None
    rebuild: bool = False             # the cut-over changed: build again with it
    forget_checkpoints: bool = False  # they belong to the old operator graph


def _local_start(args: argparse.Namespace, config: Config, password: str) -> _Start:
    """Like Managed Flink's snapshots: a restarted local job continues where it stopped — when the
    SQL still gives the same stateful operators as the last run on this checkpoint folder. If not,
    a replay upgrade (jobs/replay.py) takes over from what the sinks already hold."""
    state = upgrade.read_state(config)
    cut = state.cut if state and not args.fresh else replay.Cut("", None)
    built = _streaming_pipeline(args, config.with_cut(cut), password)
    # The start checks come before anything an upgrade changes (it trims Parquet).
    if not args.dry_run:
        _check_tables(args, config, built.features + built.fresh)
    kinesis_shards.check_stream(config)  # each open shard needs a source subtask of its own
    new = built.fingerprint()
    latest = environment.latest_checkpoint(config)
    if args.fresh:
        return _Start("starting over (--fresh), reading from source.init.position", built, new, cut)
    if state is None:  # a first run, or checkpoints of a version that kept no state file: as before
        reason = (f"resuming from checkpoint {latest} (start over with --fresh)" if latest
                  else "no checkpoint yet: starting at source.init.position")
        return _Start(reason, built, new, cut, latest)
    change = plan_fingerprint.compare(state.fingerprint, new)
    if change.restorable or args.allow_non_restored_state:
        forced = "" if change.restorable else " (--allow-non-restored-state: state that maps nowhere is dropped)"
        if latest:
            return _Start(f"resuming from checkpoint {latest}: {change.describe()}{forced}", built, new, cut, latest)
        return _Start(f"no checkpoint yet; {upgrade.describe(cut)}" if cut.start
                      else "no checkpoint yet: starting at source.init.position", built, new, cut)
    # Changed operators: with or without a checkpoint, what the sinks hold says where to take over.
    cut = upgrade.prepare(config, args.sql_dir, state.fingerprint.groups, new, trim=not args.dry_run)
    reason = (f"upgrade: {change.describe()} since the last run on {config.get('job', 'checkpoint.dir')}, so its "
              f"checkpoint cannot be restored; replay with fresh state, {upgrade.describe(cut, change.added)}")
    return _Start(reason, built, new, cut, rebuild=True, forget_checkpoints=True)


def _execute(args: argparse.Namespace, built: pipeline.Pipeline) -> int:
    result = built.statement_set.execute()
    if not _managed(args):
        job_id = str(result.get_job_client().get_job_id())
        log.info("job %s running; Flink web UI on http://localhost:8081 (or the next free port) — Ctrl-C to stop", job_id)
        stop_counters = counters.start_logging(job_id, built.config.get_int("job", "counters.log.interval.seconds"))
        try:
            result.wait()
        finally:
            stop_counters.set()
    return 0


def _in_the_cloud(args: argparse.Namespace, config: Config) -> bool:
    """Managed Flink, or a config with AWS endpoints: its database is production's."""
    endpoints = (config.get("source", "aws.endpoint"), config.get("output", "s3.endpoint"))
    return _managed(args) or any(job_config.is_aws_endpoint(url) for url in endpoints)


def _check_tables(args: argparse.Namespace, config: Config, schemas: list[FeatureSchema]) -> None:
    """Before the job is submitted, the PostgreSQL tables must be what the feature SQL needs: a
    missing one would fail every flush and restart the job forever. Locally they are created (the
    migration `migrate` runs); in the cloud, changing production tables is left to an explicit
    `migrate`. Changes migrate refuses stop both."""
    create = not _in_the_cloud(args, config)
    try:
        with rds.jdbc_connection(config, secrets.jdbc_password(config)) as connection:
            changes = rds.migrate(connection, schemas, dry_run=not create)
    except rds.DatabaseUnavailable as error:
        log.warning("%s; tables not checked: the job starts and its PostgreSQL sinks retry", error)
        return
    if changes and create:
        log.info("created in PostgreSQL (as `migrate` would): %s", rds.missing(changes))
    elif changes:
        raise rds.MigrationError(f"PostgreSQL at {rds.database_name(config)} lacks {rds.missing(changes)}: "
                                 "run `python -m jobs.feature_job migrate --config FILE` first")


def migrate(args: argparse.Namespace, config: Config) -> int:
    t_env = environment.create(config, managed=False, streaming_source=True)
    catalog = load_catalog(args.sql_dir, "kinesis", config)
    schemas = pipeline.register_features(t_env, catalog) + pipeline.register_fresh(t_env, catalog, config)
    with rds.jdbc_connection(config, secrets.jdbc_password(config)) as connection:
        changes = rds.migrate(connection, schemas, args.dry_run)
    for change in changes:
        print(change.statement + ";")
    verb = "would run" if args.dry_run else "ran"
    print(f"-- {verb} {len(changes)} statement(s) for {len(schemas)} feature table(s)")
    return 0


def backfill(args: argparse.Namespace, config: Config) -> int:
    if not args.input.exists():
        raise ConfigError(f"--input {args.input}: no such file or folder")
    password = None
    if args.to_postgres:
        if "rds" not in config.groups:
            raise ConfigError(f"{config.origin}: backfill --to-postgres needs property group 'rds'")
        password = secrets.sink_password(config)
    specs = None if args.include_partial_windows else load_specs(args.sql_dir, config)
    output_root = _backfill_output(args.output_dir)
    with tempfile.TemporaryDirectory(prefix="backfill-") as scratch:
        connector, input_file = backfill_input.prepare(args.input, Path(scratch))
        config = config.with_overrides({
            "backfill": {"input.path": input_file.resolve().as_uri()},
            "output": {"path": output_root},
        })
        # Parallelism 1: records are processed in file order, so the outcome is deterministic.
        t_env = environment.create(config, managed=False, streaming_source=False, parallelism=1)
        catalog = _only_features(load_catalog(args.sql_dir, connector, config), args.feature)
        span = None if specs is None else backfill_windows.measure(catalog)
        windows = (backfill_windows.WindowRange(args.write_from, None) if span is None
                   else backfill_windows.complete_range(span, connector, config, args.write_from))
        if args.until:
            windows = dataclasses.replace(windows, end=min(filter(None, (windows.end, args.until))))
        built = pipeline.build(t_env, catalog, config, output_root=output_root, jdbc_password=password,
                               streaming_commit=False, only_windows=windows.condition())
        built.statement_set.execute().wait()
    shown = args.output_dir.rstrip("/")
    for feature in built.features:
        print(f"{feature.name}: {shown}/{feature.name}")
    if catalog.sinks:
        print(f"quarantine: {shown}/_quarantine")
    if windows.condition():
        print(f"windows written: {windows.condition()}")
    if span is not None:
        for feature in built.features:
            print(backfill_windows.report(specs[feature.name], span, windows))
    if args.to_postgres:
        print(f"upserted into PostgreSQL: {', '.join(f.name for f in built.features)}")
    return 0


def _backfill_output(text: str) -> str:
    """The output root as the filesystem connector wants it: s3:// as given, a folder as file://."""
    if text.startswith(("s3://", "s3a://")):
        return text.rstrip("/")
    folder = Path(text)
    folder.mkdir(parents=True, exist_ok=True)
    return pipeline.sink_root(folder)


def _only_features(catalog: Catalog, names: list[str] | None) -> Catalog:
    """The catalog with only the named feature groups, and without the fixed outputs."""
    if not names:
        return catalog
    known = {feature.name for feature in catalog.features}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(f"--feature {', '.join(unknown)}: no such feature group (known: {', '.join(sorted(known))})")
    return dataclasses.replace(catalog, features=[f for f in catalog.features if f.name in names], sinks=[])


COMMANDS = {"run": run, "validate": validate, "explain": explain, "backfill": backfill, "migrate": migrate,
            "fingerprint": fingerprint}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # PyFlink's import of Apache Beam lowers the root logger to WARNING; keep the job's own at INFO.
    logging.getLogger("jobs").setLevel(logging.INFO)
    args = _parser().parse_args(argv)
    try:
        config = job_config.load(args.config, args.command)
        return COMMANDS[args.command](args, config)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
