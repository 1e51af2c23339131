"""``run``: start the streaming job. On Managed Flink the service restores its snapshot (or not) and
deploy has set the cut-over; locally the job decides like Managed Flink would: resume the last
checkpoint while the SQL gives the same stateful operators, else a replay upgrade."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from jobs.definitions import replay
from jobs.definitions.config import Config
from jobs.operations import upgrade
from jobs.operations.migrate import check_tables
from jobs.postgres import credentials
from jobs.streaming import counters, environment, kinesis_shards, pipeline, plan_fingerprint

log = logging.getLogger(__name__)


def run(args: argparse.Namespace, config: Config) -> int:
    password = credentials.sink_password(config)
    if args.managed:
        built = pipeline.streaming(config, args.sql_dir, password, managed=True)
        check_tables(args.managed, config, built.features + built.fresh)
        kinesis_shards.check_stream(config)  # each open shard needs a source subtask of its own
        return _execute(args, built)
    if not args.dry_run:
        upgrade.hold_lock(config)
    start = _local_start(args, config, password)
    if not args.dry_run:  # the state file holds the decision before it is announced
        if start.forget_checkpoints:
            environment.forget_checkpoints(config)
        upgrade.write_state(config, upgrade.LocalState(start.fingerprint, start.cut))
    print(f"run: {start.reason}", flush=True)
    if args.dry_run:
        return 0
    built = pipeline.streaming(config.with_cut(start.cut), args.sql_dir, password) if start.rebuild else start.built
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
    a replay upgrade (jobs/definitions/replay.py) takes over from what the sinks already hold."""
    state = upgrade.read_state(config)
    cut = state.cut if state and not args.fresh else replay.Cut("", None)
    built = pipeline.streaming(config.with_cut(cut), args.sql_dir, password)
    # The start checks come before anything an upgrade changes (it trims Parquet).
    if not args.dry_run:
        check_tables(args.managed, config, built.features + built.fresh)
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
    if args.managed:
        built.statement_set.execute()
        return 0
    client = built.submit()
    job_id = str(client.getJobID())
    log.info("job %s running; Flink web UI on http://localhost:8081 (or the next free port) — Ctrl-C to stop", job_id)
    stop_counters = counters.start_logging(job_id, built.config.get_int("job", "counters.log.interval.seconds"))
    try:
        client.getJobExecutionResult().get()
    finally:
        stop_counters.set()
    return 0
