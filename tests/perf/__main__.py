"""The one benchmark command: ``python -m tests.perf`` (``make bench``).

Runs the end-to-end section (tests/perf/end_to_end.py: the job and two baselines through the local
Kinesis endpoint into PostgreSQL and S3), the throughput section (tests/perf/throughput.py: the hot
path into a discarding sink, its ceilings, levers and state sizes) and the online read latency
(tests/perf/serving_latency.py), then writes target/perf/report.md and prints it.

Three sizes: the default (about 18 minutes: the job's own throughput variants, the
q5-shaped query at this job's pace and the Python baseline, 3 rounds each; every design's catch-up
and the job's live runs; online reads); ``--full`` (about 2 hours: also the
ceilings, the job before the hot-path work, the RocksDB levers, the state sizes and the baselines'
live runs, at larger sizes); ``--quick`` (a smoke run of a few minutes, 1 round). Prints figures
and asserts nothing about speed; a section that fails is reported as such and the command exits 1.
Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from tests.perf import end_to_end, report, serving_latency, throughput

log = logging.getLogger("tests.perf")  # run as __main__: named so that it stays at INFO (see main)

QUICK = {"events": 200_000, "repeats": 1, "backlog_events": 20_000, "warmup_seconds": 5.0, "measure_seconds": 60.0,
         "per_event_seconds": 15.0, "pg_rows": 20_000, "serving_users": 10_000, "serving_hours": 1,
         "serving_requests": 300}
# events: the whole job's CPU per run hardly falls with fewer events (about 50 CPU-s at 100,000 and
# at 200,000), so below 200,000 its per-core figure falls and the Nexmark comparison with it.
DEFAULT = {"events": 200_000, "repeats": 3, "backlog_events": 50_000, "warmup_seconds": 5.0,
           "measure_seconds": 60.0, "per_event_seconds": 20.0, "pg_rows": 50_000, "serving_users": 100_000,
           "serving_hours": 2, "serving_requests": 1000}
FULL = {"events": 1_000_000, "repeats": 3, "backlog_events": 200_000, "warmup_seconds": 20.0, "measure_seconds": 60.0,
        "per_event_seconds": 60.0, "pg_rows": 200_000, "serving_users": 100_000, "serving_hours": 6,
        "serving_requests": 2000}
SECTIONS = ("throughput", "end-to-end", "serving")


def _default(name: str) -> str:
    """The help's "default X; --full Y", read from the size tables so it cannot drift from them."""
    def shown(value: int | float) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"
    full = f"; --full {shown(FULL[name])}" if FULL[name] != DEFAULT[name] else ""
    return f"default {shown(DEFAULT[name])}{full}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes, one round, a few minutes: a smoke test")
    sizes.add_argument("--full", action="store_true",
                       help="every throughput variant and the state sizes, larger sizes: about 2 hours")
    parser.add_argument("--only", choices=SECTIONS, help="run one section")
    parser.add_argument("--events", type=int, help=f"throughput section: events ({_default('events')})")
    parser.add_argument("--repeats", type=int,
                        help=f"throughput section: runs of every variant ({_default('repeats')})")
    parser.add_argument("--backlog-events", type=int,
                        help=f"end to end: catch-up backlog ({_default('backlog_events')})")
    parser.add_argument("--rate", type=float, help="end to end: live events/s (default: half of PutRecords' rate)")
    parser.add_argument("--warmup-seconds", type=float,
                        help=f"end to end: live feed before measuring ({_default('warmup_seconds')})")
    parser.add_argument("--measure-seconds", type=float,
                        help="end to end: measured live span, whole minutes keep freshness unbiased "
                             f"({_default('measure_seconds')})")
    parser.add_argument("--per-event-seconds", type=float,
                        help=f"end to end: per-event catch-up budget ({_default('per_event_seconds')})")
    parser.add_argument("--delay-seconds", type=int, default=5, help="end to end: watermark delay (default 5)")
    parser.add_argument("--pg-rows", type=int,
                        help=f"end to end: rows for the PostgreSQL bound ({_default('pg_rows')})")
    parser.add_argument("--serving-users", type=int,
                        help=f"online reads: users in the filled tables ({_default('serving_users')})")
    parser.add_argument("--serving-hours", type=int,
                        help=f"online reads: hours of windows in them ({_default('serving_hours')})")
    parser.add_argument("--serving-requests", type=int,
                        help=f"online reads: calls timed per line ({_default('serving_requests')})")
    parser.add_argument("--out", type=Path, default=report.REPORT, help="report file (default target/perf/report.md)")
    return parser


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset sizes from --quick, --full or the default."""
    for name, value in (QUICK if args.quick else FULL if args.full else DEFAULT).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def throughput_section(args: argparse.Namespace) -> str:
    return throughput.report(args)


def serving_section(args: argparse.Namespace) -> str:
    return serving_latency.report(argparse.Namespace(users=args.serving_users, hours=args.serving_hours,
                                                     requests=args.serving_requests))


def end_to_end_section(args: argparse.Namespace) -> str:
    options = end_to_end.Options(
        scratch=args.out.resolve().parent / "e2e", backlog_events=args.backlog_events, rate=args.rate,
        warmup_s=args.warmup_seconds, measure_s=args.measure_seconds, per_event_budget_s=args.per_event_seconds,
        delay_s=args.delay_seconds, pg_bound_rows=args.pg_rows,
        # Each live run needs ~3 minutes. The targets read the job's live runs only (its freshness,
        # and the fresh slices' cost: with and without them); the baselines' live freshness is --full's.
        live_designs=("job", end_to_end.JOB_WITHOUT_FRESH) + (("windowed", "per-event") if args.full else ()))
    return end_to_end.section(end_to_end.run(options))


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C, so every section's cleanup (job, baselines) still runs."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # The in-process migrates import Apache Beam, which lowers the root logger to WARNING; keep the
    # bench's progress lines (and the local services') at INFO.
    for name in ("tests", "deploy"):
        logging.getLogger(name).setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _resolve(_parser().parse_args(argv))
    _interrupt_on_sigterm()
    started = datetime.now(timezone.utc)
    machine = report.machine()  # first: the load average before this run adds its own
    # End to end first: throughput starts a JVM inside this process, which would then sit beside
    # the end-to-end runs. The report still lists throughput first.
    runs: list[tuple[str, Callable[[argparse.Namespace], str]]] = [
        ("end-to-end", end_to_end_section), ("throughput", throughput_section), ("serving", serving_section)]
    sections: dict[str, str] = {}
    failed = False
    for name, run in runs:
        if args.only and args.only != name:
            continue
        log.info("section %s", name)
        try:
            sections[name] = run(args)
        except Exception:  # one section failing still leaves the other's figures
            failed = True
            log.exception("section %s failed", name)
            sections[name] = f"## {name}: FAILED\n\n```\n{traceback.format_exc()[-3000:]}```\n"
    ordered = [sections[name] for name in SECTIONS if name in sections]
    text = report.assemble(shlex.join(["python", "-m", "tests.perf", *argv]), ordered, started, machine)
    path = report.write(text, args.out)
    print(text)
    log.info("report written to %s", path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
