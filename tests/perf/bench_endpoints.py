"""Kinesis throughput of the two local endpoints: the embedded emulator and real LocalStack.

    python -m tests.perf.bench_endpoints [--sizes 2000,5000,10000,50000] [--repeats 3]
                                         [--time-limit 120] [--variants emulator,localstack,...]
                                         [--fresh-install]

Each variant is started fresh on its own port (never the services' 4566), timed to its first
answered Kinesis call (LocalStack starts kinesis-mock on that call), then for each size and repeat:
a new 1-shard stream, N ~150-byte records with boto3 PutRecords in batches of 500, then all of them
back with GetRecords from TRIM_HORIZON. A run that passes --time-limit stops and is reported as
"did not finish" (with how far it got). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local import aws, localstack, process
from deploy.local.state import DEFAULT_STATE, StateDirs

log = logging.getLogger("bench_endpoints")

HOST = "127.0.0.1"
BATCH = 500
REGION = "us-east-1"
# LocalStack settings tried against its put rate, on top of deploy/local/localstack.py's environment.
# kinesis-mock 0.5.2 has no setting for how it stores records: its PutRecords groups the new records
# by (shard, that shard's whole record Vector), hashing every stored record once per new record, so
# a put costs in proportion to the shard's length. Only shorter shards help: more of them.
LOCALSTACK_VARIANTS: dict[str, dict[str, str]] = {
    "localstack": {},
    "localstack-quiet": {"KINESIS_MOCK_LOG_LEVEL": "WARN", "LS_LOG": "warn"},  # no per-request log lines
    "localstack-latency-500": {"KINESIS_LATENCY": "500"},  # LocalStack's default stream-state delay
    "localstack-4-shards": {},
}
SHARDS = {"localstack-4-shards": 4}  # default 1
VARIANTS = ("emulator", *LOCALSTACK_VARIANTS)


@dataclass
class Run:
    put_rate: float | None  # records/s; None: did not finish
    get_rate: float | None
    note: str = ""


@dataclass
class Result:
    variant: str
    ready_s: float  # started -> health check / port answers
    start_s: float  # started -> first Kinesis call answered (LocalStack boots kinesis-mock on it)
    runs: dict[int, list[Run]] = field(default_factory=dict)


def _record(i: int) -> bytes:
    body = f'{{"txid":"{uuid.uuid4()}","user_id":"u{i % 97}","event_type":"A","event_time":"2026-01-01T00:00:00Z"'
    return (body + ',"pad":"' + "x" * max(0, 148 - len(body)) + '"}').encode()


class Endpoint:
    """One endpoint process of ours on a port of its own."""

    def __init__(self, variant: str, port: int, state: StateDirs) -> None:
        self.variant, self.port, self.state = variant, port, state
        self.url = f"http://{HOST}:{port}"
        self.pid: int | None = None

    def start(self) -> tuple[float, float]:
        if process.port_open(HOST, self.port):
            raise SystemExit(f"port {self.port} is taken; pick another --port-base")
        started = time.monotonic()
        if self.variant == "emulator":
            self.pid = process.spawn([sys.executable, "-m", "deploy.local.emulator", "--host", HOST, "--port",
                                      str(self.port)], pid_file=self.state.run / f"bench-emulator-{self.port}.pid",
                                     log_file=self.state.logs / f"bench-emulator-{self.port}.log")
        else:
            self.pid = localstack.start(self.state, HOST, self.port, LOCALSTACK_VARIANTS[self.variant])
        while not process.port_open(HOST, self.port):
            time.sleep(0.05)
        ready = time.monotonic() - started
        kinesis = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                kinesis.list_streams(Limit=1)
                return ready, time.monotonic() - started
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def client(self) -> Any:
        return aws.client("kinesis", self.url, REGION, timeout=60, retries=2)

    def stop(self) -> None:
        if self.pid is not None:
            process.stop(self.pid, timeout=20)
            for pid_file in self.state.run.glob(f"*-{self.port}.pid"):
                pid_file.unlink(missing_ok=True)


def measure(kinesis: Any, records: int, time_limit: float, shards: int = 1) -> Run:
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    try:
        payloads = [_record(i) for i in range(records)]
        started = time.monotonic()
        for offset in range(0, records, BATCH):
            if time.monotonic() - started > time_limit:
                return Run(None, None, f"put {offset:,} in {time_limit:.0f} s")
            batch = [{"Data": data, "PartitionKey": str(offset + i)} for i, data in enumerate(payloads[offset:offset + BATCH])]
            while batch:  # re-send what was throttled or failed
                answer = kinesis.put_records(StreamName=stream, Records=batch)
                batch = [r for r, a in zip(batch, answer["Records"]) if "ErrorCode" in a]
        put_rate = records / (time.monotonic() - started)
        iterators = [kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                     for shard in kinesis.list_shards(StreamName=stream)["Shards"]]
        got, started = 0, time.monotonic()
        while got < records:
            if time.monotonic() - started > time_limit:
                return Run(put_rate, None, f"got {got:,} in {time_limit:.0f} s")
            for i, iterator in enumerate(iterators):
                answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                got += len(answer["Records"])
                iterators[i] = answer["NextShardIterator"]
        return Run(put_rate, records / (time.monotonic() - started))
    finally:
        kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)


def bench(variant: str, port: int, sizes: list[int], repeats: int, time_limit: float, state: StateDirs) -> Result:
    endpoint = Endpoint(variant, port, state)
    try:
        result = Result(variant, *endpoint.start())
        log.info("%s ready on %s in %.2f s, Kinesis answered after %.2f s", variant, endpoint.url,
                 result.ready_s, result.start_s)
        kinesis = endpoint.client()
        for size in sizes:
            runs = result.runs.setdefault(size, [])
            for _ in range(repeats if size <= 10_000 else 1):
                runs.append(measure(kinesis, size, time_limit, SHARDS.get(variant, 1)))
                log.info("%s %d records: %s", variant, size, runs[-1])
                if runs[-1].put_rate is None:
                    break  # the next repeat would not finish either
        return result
    finally:
        endpoint.stop()


def _figure(rates: list[float | None], notes: list[str]) -> str:
    done = [r for r in rates if r is not None]
    if not done:
        return f"did not finish ({notes[0]})" if notes and notes[0] else "did not finish"
    text = f"{statistics.median(done):,.0f}"
    if len(done) > 1:
        text += f" ({min(done):,.0f}–{max(done):,.0f}, n={len(done)})"
    return text + ("" if len(done) == len(rates) else f"; {len(rates) - len(done)} did not finish")


def table(results: list[Result], install_s: float | None) -> str:
    lines = ["| endpoint (shards) | ready s / first Kinesis answer s | records | PutRecords records/s, median (min–max) | GetRecords records/s |",
             "|---|---:|---:|---:|---:|"]
    for result in results:
        for size, runs in result.runs.items():
            lines.append(f"| {result.variant} ({SHARDS.get(result.variant, 1)}) | {result.ready_s:.1f} / {result.start_s:.1f} | {size:,} | "
                         f"{_figure([r.put_rate for r in runs], [r.note for r in runs])} | "
                         f"{_figure([r.get_rate for r in runs], [r.note for r in runs if r.put_rate])} |")
    lines.append(f"\nMachine load average at the end (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
                 f"on {os.cpu_count()} CPUs")
    if install_s is not None:
        lines.append(f"\nLocalStack {localstack.VERSION} install from the registries (venv + pip + npm): {install_s:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bench_endpoints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,5000,10000,50000")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size up to 10,000 records (default 3)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per put or get phase")
    parser.add_argument("--variants", default="emulator,localstack", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--port-base", type=int, default=4630, help="variant i listens on port-base + i")
    parser.add_argument("--fresh-install", action="store_true",
                        help="time a LocalStack install into an empty temp folder (~100 s) instead of reusing .local's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    state = DEFAULT_STATE.ensure()
    install_s = None
    if args.fresh_install:
        with tempfile.TemporaryDirectory() as folder:
            install_s = localstack.install(StateDirs(Path(folder)).ensure())
    if any(v != "emulator" for v in variants):
        localstack.install(state)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = [bench(v, args.port_base + i, sizes, args.repeats, args.time_limit, state) for i, v in enumerate(variants)]
    print(table(results, install_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
