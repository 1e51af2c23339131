"""Command line: ``python -m deploy.local <command>`` (from the repository root).

  install [--localstack]          system packages (PostgreSQL), Python requirements [, real LocalStack]
  up [--aws localstack] [--config C]   start what is not running, create stream + bucket + database
  status [--config C]             what runs where
  down [--config C]               stop what `up` started
  reset [--config C]              empty stream, bucket and every table in `public`
  generate --out FILE [...]       write sample events (JSON lines)
  produce --events FILE [--rate N] [--config C]   put a JSON-lines file into the stream
  demo [--seconds N] [--watch] [--aws localstack] [--config C]   everything, live: services, job, events, outputs
  stop-job [--config C]           stop the job `demo` started
  upgrade [--config C]            ship changed feature SQL to that job (it resumes or replays)
  cluster up|submit|status|down [--config C]   a Flink cluster run the Managed Flink way, the zip on it
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from deploy.local import config as config_module
from deploy.local.config import DEFAULT_CONFIG, REPO_ROOT
from deploy.local.state import DEFAULT_STATE

log = logging.getLogger("deploy.local")
AWS_KINDS = ("emulator", "localstack")  # deploy/local/aws_endpoint.py's CHOICES (not imported: no boto3 for `generate`)


def _iso_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description="Local services for the pipeline.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                         help="property-group JSON (default: %(default)s)")
        return sub

    install = commands.add_parser("install", help="install PostgreSQL (apt) and requirements.txt (pip)")
    install.add_argument("--no-pip", action="store_true", help="system packages only")
    install.add_argument("--localstack", action="store_true",
                         help="also real LocalStack (its own Python 3.13 venv and kinesis-mock) under .local/")
    up = with_config("up", "start the services and create stream, bucket, database")
    up.add_argument("--aws", choices=AWS_KINDS, default="emulator",
                    help="what serves Kinesis+S3 when nothing answers on the config's endpoint "
                         "(default: %(default)s; one already answering is used either way)")
    with_config("status", "show what runs where")
    with_config("down", "stop what `up` started")
    with_config("reset", "empty the stream, the bucket and every table in `public`")

    produce = with_config("produce", "put a JSON-lines file into the stream")
    produce.add_argument("--events", type=Path, required=True, help="JSON-lines file, one event per line")
    produce.add_argument("--rate", type=float, default=None, help="records per second (default: as fast as possible)")

    demo = with_config("demo", "up, jar, migrate, job in the background, sample events, live view")
    demo.add_argument("--seconds", type=float, default=75.0, help="how long the live view runs (default 75; 0: once)")
    demo.add_argument("--interval", type=float, default=5.0, help="seconds between fresh batches and refreshes")
    demo.add_argument("--events", type=int, default=2000, help="events in the first batch (default 2000)")
    demo.add_argument("--users", type=int, default=50)
    demo.add_argument("--watch", action="store_true", help="look at the running job again (no setup)")
    demo.add_argument("--no-produce", action="store_true", help="send no events, only look")
    demo.add_argument("--aws", choices=AWS_KINDS, default="emulator",
                      help="as for `up` (default: %(default)s)")
    with_config("stop-job", "stop the job `demo` started (services keep running)")
    with_config("upgrade", "ship changed feature SQL to the demo's job: checks, migrate, stop, start (resume or replay)")

    cluster = with_config("cluster", "a JobManager and TaskManagers run the Managed Flink way; submit the zip")
    cluster.add_argument("action", choices=("up", "submit", "status", "down"))

    gen = commands.add_parser("generate", help="write sample events with duplicates, disorder and bad lines")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--users", type=int, default=50)
    gen.add_argument("--events", type=int, default=2000, help="distinct valid events")
    gen.add_argument("--duplicates", type=float, default=0.1, help="share of events re-sent (default 0.1)")
    gen.add_argument("--out-of-order-seconds", type=float, default=20.0, help="max delivery delay (default 20)")
    gen.add_argument("--malformed", type=float, default=0.01, help="malformed lines as a share of events")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--start", type=_iso_datetime, default=None,
                     help="first event time, ISO 8601 (default: the span ends now)")
    gen.add_argument("--span-seconds", type=float, default=600.0, help="event times spread over this span")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "install":
        script = REPO_ROOT / "deploy" / "local" / "install.sh"
        code = subprocess.call(["bash", str(script), *(["--no-pip"] if args.no_pip else [])], cwd=REPO_ROOT)
        if code == 0 and args.localstack:
            from deploy.local import localstack

            seconds = localstack.install(DEFAULT_STATE.ensure())
            print(f"LocalStack {localstack.VERSION} installed in {localstack.home(DEFAULT_STATE)} ({seconds:.1f} s)")
        return code

    if args.command == "generate":
        from deploy.local.generator import GeneratorOptions, generate

        options = GeneratorOptions(users=args.users, events=args.events, duplicates=args.duplicates,
                                   out_of_order_seconds=args.out_of_order_seconds, malformed=args.malformed,
                                   seed=args.seed, start=args.start, span_seconds=args.span_seconds)
        summary = generate(options, args.out)
        print(f"wrote {args.out}: {summary.describe()}")
        return 0

    # Everything below talks to services; imported here so `generate` needs no boto3/psycopg.
    from deploy.local import aws, job, producer, services

    settings = config_module.load(args.config)
    state = DEFAULT_STATE
    if args.command == "demo":
        from deploy.local import demo

        return demo.run(demo.DemoOptions(config_path=args.config, seconds=args.seconds, interval=args.interval,
                                         events=args.events, users=args.users, watch=args.watch,
                                         produce=not args.no_produce, aws=args.aws), settings, state)
    if args.command == "upgrade":
        from deploy.local.upgrade import upgrade

        for line in upgrade(state, args.config):
            print(line)
        return 0
    if args.command == "cluster":
        from deploy.local import cluster

        print("\n".join(cluster.command(args.action, args.config, settings, state)))
        return 0
    if args.command == "stop-job":
        pid = job.stop(state, args.config)
        print(f"stopped job pid {pid}" if pid else "no job started by `demo` is running on this config")
        return 0
    if args.command == "up":
        report = services.up(settings, state, args.aws)
        print("\n".join(report.lines(settings, state)))
    elif args.command == "status":
        report = services.status(settings, state)
        print("\n".join(report.lines(settings, state)))
    elif args.command == "down":
        stopped = services.down(settings, state)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (no service was started by `up`)"))
    elif args.command == "reset":
        result = services.reset(settings)
        print(f"stream {settings.stream_name} recreated ({settings.shard_count} shard(s)); "
              f"{result.objects_deleted} objects deleted from s3://{settings.bucket}; "
              f"tables truncated: {', '.join(result.tables_truncated) or 'none'}")
    elif args.command == "produce":
        stats = producer.produce(aws.kinesis(settings), settings.stream_name, args.events, args.rate)
        print(f"sent {stats.sent} records to {settings.stream_name} in {stats.seconds:.1f} s "
              f"({stats.rate:.0f} records/s); {stats.retried} re-sent after failures, {stats.skipped} skipped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _run(args)
    except Exception as exc:
        if args.verbose:
            raise
        # One readable line instead of a traceback; -v shows the traceback.
        log.error("%s: %s", type(exc).__name__, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
