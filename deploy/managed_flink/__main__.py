"""Command line: ``python -m deploy.managed_flink <command>`` (see the package docstring).

Exit codes: 0 done, 2 a configuration, packaging or AWS problem (one `error:` line says which).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from deploy.managed_flink import REPO_ROOT

log = logging.getLogger("deploy.managed_flink")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.managed_flink",
                                     description="Package, deploy and operate the job on Managed Service for Apache Flink.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    package = commands.add_parser("package", help="build target/<name>-<version>.zip")
    package.add_argument("--out", type=Path, default=None, help="zip to write (default: target/<name>-<version>.zip)")
    package.add_argument("--jar", type=Path, default=None, help="connector jar (default: target/pyflink-dependencies.jar)")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, required=True, help="property-group JSON with a 'deploy' group")
        return sub

    deploy = with_config("deploy", "package, upload, create or update the application")
    deploy.add_argument("--dry-run", action="store_true",
                        help="print the mutating requests as JSON and send none (read-only look-ups when credentials exist)")
    deploy.add_argument("--zip", type=Path, default=None, help="deploy this zip instead of building one")
    deploy.add_argument("--sql-dir", type=Path, default=REPO_ROOT / "sql", help="folder of SQL files (the zip's)")

    start = with_config("start", "start the application")
    start.add_argument("--snapshot", default="latest",
                       help="latest (default), none (start without state), or a snapshot name")
    start.add_argument("--allow-non-restored-state", action="store_true",
                       help="start even if some snapshot state maps to no operator (it is dropped)")
    start.add_argument("--dry-run", action="store_true", help="print the request, send nothing")

    stop = with_config("stop", "stop the application (snapshot first, when enabled)")
    stop.add_argument("--force", action="store_true", help="stop without a snapshot")
    stop.add_argument("--dry-run", action="store_true", help="print the request, send nothing")

    with_config("status", "state, version, last error, snapshots, links")

    iam = with_config("iam", "the IAM policies for this config")
    iam.add_argument("--out-dir", type=Path, default=None, help="write the JSON files here (default: print)")

    athena = with_config("athena", "Glue/Athena DDL for each feature")
    athena.add_argument("--out-dir", type=Path, default=None, help="write the .sql files here (default: print)")
    athena.add_argument("--sql-dir", type=Path, default=REPO_ROOT / "sql", help="folder of SQL files")
    return parser


def _package(args: argparse.Namespace) -> int:
    from deploy.managed_flink import package

    artifact = package.build(out=args.out, jar=args.jar)
    print(f"{artifact.path}  {artifact.size} bytes  sha256 {artifact.sha256}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    import dataclasses

    from deploy.managed_flink import aws, package, plan, upgrade
    from deploy.managed_flink import settings as settings_module
    from jobs.streaming.pipeline import fingerprint_of

    settings = settings_module.load(args.config)
    artifact = package.artifact_of(args.zip) if args.zip else package.build()
    problems = package.check_layout(artifact.path)
    if problems:
        raise package.PackageError("; ".join(problems))
    new = fingerprint_of(settings.job, args.sql_dir)
    credentials = aws.have_credentials()
    if args.dry_run and not credentials:
        log.info("no AWS credentials: showing the create path without looking anything up")
        settings = dataclasses.replace(settings, runtime_properties=upgrade.properties_with(settings, new.summary()))
        aws.print_plan(plan.deploy_plan(settings, artifact, plan.Existing()), False, sys.stdout)
        return 0
    clients = aws.make_clients(settings.region)
    existing = aws.look_up(settings, artifact, clients)
    decision = upgrade.decide(existing.application, new)
    log.info("deploy: %s", decision.reason)
    if decision.replay:
        return _deploy_replay(args, settings, artifact, existing, new, clients, decision.reason)
    settings = dataclasses.replace(settings, runtime_properties=upgrade.properties_with(
        settings, upgrade.kept_record(existing.application, new)))
    deployment = plan.deploy_plan(settings, artifact, existing)
    deployment.notes.insert(0, decision.reason)
    if args.dry_run:
        aws.print_plan(deployment, True, sys.stdout)
        return 0
    for note in deployment.notes:
        log.info("%s", note)
    aws.execute(settings, deployment, clients)
    print(f"deployed {settings.application_name}: s3://{settings.code_bucket}/{plan.code_key(settings, artifact)}"
          f" ({len(deployment.calls)} request(s)); `python -m deploy.managed_flink status --config {args.config}`")
    return 0


def _deploy_replay(args: argparse.Namespace, settings, artifact, existing, new, clients, reason: str) -> int:
    """Stop (snapshot), update with the cut-over and without restore, start without the snapshot."""
    import dataclasses

    from deploy.managed_flink import aws, operate, plan, upgrade
    from jobs.operations import upgrade as job_upgrade

    old_groups = [item.split("=", 1)[0] for item in upgrade.recorded(existing.application)["groups"].split(",") if item]
    running = existing.application["ApplicationStatus"] == "RUNNING"
    # Checks before anything stops: markers in both sinks, the stream's retention (an estimate: the
    # markers only move forward until the stop).
    estimate = job_upgrade.prepare(settings.job, args.sql_dir, old_groups, new, trim=False)

    def requests(cut, detail) -> plan.Plan:
        with_cut = dataclasses.replace(settings, runtime_properties=upgrade.properties_with(
            settings, upgrade.replay_record(new, cut)))
        shipped = plan.deploy_plan(with_cut, artifact, dataclasses.replace(existing, application=detail))
        shipped.calls = [upgrade.without_restore(call) if call.operation == "UpdateApplication" else call
                         for call in shipped.calls] + [operate.start_call(settings, "none", allow_non_restored_state=False)]
        return shipped

    if args.dry_run:
        stopped = {**existing.application, "ApplicationStatus": "READY"}  # the update comes after the stop
        shown = requests(estimate, stopped)
        shown.calls = ([operate.stop_call(settings, force=False)] if running else []) + shown.calls
        shown.notes[:0] = [reason, f"replay upgrade: {job_upgrade.describe(estimate)} (re-read after the stop)"]
        aws.print_plan(shown, True, sys.stdout)
        return 0
    if running:
        aws.execute(settings, plan.Plan([operate.stop_call(settings, force=False)]), clients)
    detail = upgrade.wait_until_ready(clients.kinesisanalyticsv2, settings.application_name)
    cut = job_upgrade.prepare(settings.job, args.sql_dir, old_groups, new, trim=True)
    added = sorted(set(new.groups) - set(old_groups))
    log.info("replay upgrade: %s", job_upgrade.describe(cut, added))
    shipped = requests(cut, detail)
    aws.execute(settings, shipped, clients)
    print(f"deployed {settings.application_name} as a replay upgrade: {job_upgrade.describe(cut)}; "
          f"`python -m deploy.managed_flink status --config {args.config}` follows the start")
    return 0


def _start_or_stop(args: argparse.Namespace) -> int:
    from deploy.managed_flink import aws, operate, plan
    from deploy.managed_flink import settings as settings_module

    settings = settings_module.load(args.config)
    if args.command == "start":
        call = operate.start_call(settings, args.snapshot, args.allow_non_restored_state)
    else:
        call = operate.stop_call(settings, args.force)
    credentials = aws.have_credentials()
    notes: list[str] = []
    clients = aws.make_clients(settings.region) if credentials else None
    if clients is not None:
        client = clients.kinesisanalyticsv2
        notes = (operate.check_start(settings, client, args.snapshot) if args.command == "start"
                 else operate.check_stop(settings, client))
    if args.dry_run:
        aws.print_plan(plan.Plan([call], notes), credentials, sys.stdout)
        return 0
    if clients is None:
        raise aws.DeployError("no AWS credentials found (environment, profile or instance role)")
    for note in notes:
        log.info("%s", note)
    aws.execute(settings, plan.Plan([call]), clients)
    print(f"{args.command} requested for {settings.application_name}; "
          f"`python -m deploy.managed_flink status --config {args.config}` follows it")
    return 0


def _status(args: argparse.Namespace) -> int:
    from deploy.managed_flink import aws, operate
    from deploy.managed_flink import settings as settings_module

    settings = settings_module.load(args.config)
    print("\n".join(operate.status(settings, aws.make_clients(settings.region).kinesisanalyticsv2)))
    return 0


def _iam(args: argparse.Namespace) -> int:
    from deploy.managed_flink import iam
    from deploy.managed_flink import settings as settings_module

    settings = settings_module.load(args.config)
    if args.out_dir:
        for path in iam.write(settings, args.out_dir):
            print(path)
    else:
        for name, policy in iam.policies(settings).items():
            print(f"// {name}\n{iam.render(policy)}")
    return 0


def _athena(args: argparse.Namespace) -> int:
    from deploy.managed_flink import athena
    from deploy.managed_flink import settings as settings_module
    from jobs.streaming.environment import SetupError

    settings = settings_module.load(args.config)
    try:
        files = athena.render_all(settings, athena.feature_schemas(settings, args.sql_dir))
    except SetupError as error:  # no connector jar: `make jar`
        raise athena.AthenaError(str(error)) from None
    if args.out_dir:
        for path in athena.write(files, args.out_dir):
            print(path)
    else:
        print("\n".join(files.values()))
    return 0


COMMANDS = {"package": _package, "deploy": _deploy, "start": _start_or_stop, "stop": _start_or_stop,
            "status": _status, "iam": _iam, "athena": _athena}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from botocore.exceptions import BotoCoreError, ClientError

    from deploy.managed_flink.athena import AthenaError
    from deploy.managed_flink.aws import DeployError
    from deploy.managed_flink.package import PackageError
    from deploy.managed_flink.plan import PlanError
    from jobs.definitions.config import ConfigError
    from jobs.definitions.replay import ReplayError
    from jobs.definitions.schema import FeatureSchemaError
    from jobs.definitions.sql_catalog import SqlFileError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, PackageError, PlanError, DeployError, AthenaError, SqlFileError, FeatureSchemaError,
            ReplayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ClientError as error:  # a look-up the commands do not translate (permissions, throttling)
        print(f"error: AWS: {error}", file=sys.stderr)
        return 2
    except BotoCoreError as error:  # no region, endpoint unreachable, credentials expired...
        print(f"error: AWS: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
