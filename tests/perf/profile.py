"""Where the CPU of one throughput variant goes, by operator chain and by kind of work.

    python -m tests.perf.profile [--variant NAME] [--events 300000]

Runs the variant as tests/perf/throughput.py does (a warm-up run, then the measured one, in this
process's JVM) with Java Flight Recorder on for the measured run only (jcmd JFR.start/JFR.stop on
the PyFlink gateway JVM, where the MiniCluster runs every task). Prints:
  * CPU seconds per thread over the measured run, from /proc/<jvm>/task, grouped: each Flink
    task (an operator chain, one thread per subtask) by its name, RocksDB's background threads
    (flush, compaction), the JIT compilers, GC, the rest;
  * within the task threads, the share of JFR samples by kind of work: the innermost frame that
    is not the JDK's says which (RocksDB calls, state serializers, records in and out, the JSON
    parse, generated code, ...). Java samples and native-method samples (a RocksDB call runs
    in native code) both count.
Asserts nothing; the recording stays in target/perf/profile-<variant>.jfr for `jfr` or JMC.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import threading
from pathlib import Path

from tests.perf import cpu, throughput
from tests.perf.events import PERF_DIR

# Kinds of work, tried on each frame from the innermost out; the first frame that matches one names
# the sample. JDK frames match none: a HashMap lookup counts for whoever called it.
KINDS: list[tuple[str, re.Pattern[str]]] = [(kind, re.compile(pattern)) for kind, pattern in [
    ("RocksDB calls (JNI)", r"^org\.rocksdb\."),
    ("JSON parse (EVENT_FIELDS)", r"^com\.example\.features\."),
    ("state serializers", r"Serializer|\.typeutils\.|^org\.apache\.flink\.core\.memory\."),
    ("RocksDB state backend (Flink side)", r"^org\.apache\.flink\.(contrib\.streaming\.state|state\.rocksdb)\."),
    ("heap state backend", r"^org\.apache\.flink\.runtime\.state\."),
    ("window operators", r"^org\.apache\.flink\.table\.runtime\.operators\.(window|aggregate\.window)"),
    ("dedup operator", r"^org\.apache\.flink\.table\.runtime\.operators\.deduplicate\."),
    ("timers", r"^org\.apache\.flink\.streaming\.api\.operators\.(InternalTimer|HeapPriorityQueue)|TimerService"),
    ("file source", r"^org\.apache\.flink\.connector\.file\.|^org\.apache\.flink\.api\.common\.io\."),
    ("records in and out (network, chaining)", r"^org\.apache\.flink\.(runtime\.io|streaming\.runtime\.io|runtime\.plugable)"
                                               r"|RecordWriter|ChainingOutput|CountingOutput|Output\b"),
    ("generated code (Calc, projections, aggregates)", r"^[^.]+$"),  # planner codegen: no package
    ("table runtime, other", r"^org\.apache\.flink\.table\."),
    ("Flink runtime, other", r"^org\.apache\.flink\."),
]]
JDK = re.compile(r"^(java|javax|jdk|sun|com\.sun)\.")
TASK_SUFFIX = re.compile(r" \(\d+/\d+\)#\d+$")  # a Flink task thread's subtask: "... (1/2)#0"


def _sample_while(threads: cpu.ThreadCpu, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        threads.take()


def _jvm_pid() -> int:
    jvms = [pid for pid in cpu.descendants(os.getpid()) if Path(f"/proc/{pid}/comm").read_text().strip() == "java"]
    if len(jvms) != 1:
        raise RuntimeError(f"expected one JVM below this process, found {jvms}")
    return jvms[0]


def _jcmd(pid: int, *command: str) -> None:
    subprocess.run(["jcmd", str(pid), *command], check=True, capture_output=True, text=True)


def record(name: str, events: int, warmup: int, recording: Path) -> tuple[throughput.Figure, dict[int, tuple[str, float]]]:
    """The variant's warm-up run, then its measured run under JFR and the thread sampler."""
    variant = throughput.BY_NAME[name]
    if variant.build is None:
        raise SystemExit("the Python baseline runs no JVM: nothing to profile")
    throughput.measure("warm-up (not reported)", warmup * variant.scale, lambda: variant.build(warmup))
    jvm = _jvm_pid()
    recording.unlink(missing_ok=True)
    _jcmd(jvm, "JFR.start", "name=profile", "settings=default", f"filename={recording}")
    threads, stop = cpu.ThreadCpu(jvm), threading.Event()
    threads.take()
    sampler = threading.Thread(target=_sample_while, args=(threads, stop), daemon=True)
    sampler.start()
    figure = throughput.measure(name, events * variant.scale, lambda: variant.build(events))
    stop.set()
    sampler.join()
    threads.take()
    _jcmd(jvm, "JFR.stop", "name=profile")
    return figure, threads.seconds()


def _samples(recording: Path) -> list[dict]:
    printed = subprocess.run(["jfr", "print", "--json", "--stack-depth", "40",
                              "--events", "jdk.ExecutionSample,jdk.NativeMethodSample", str(recording)],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(printed)["recording"]["events"]


def _kind(frames: list[dict]) -> str:
    for frame in frames:
        cls = frame["method"]["type"]["name"].replace("/", ".")
        if JDK.match(cls):
            continue
        for kind, pattern in KINDS:
            if pattern.search(cls):
                return kind
        return "other"
    return "JDK only"


def _group(comm: str, java_name: str | None) -> str:
    if java_name and TASK_SUFFIX.search(java_name):
        return "task: " + TASK_SUFFIX.sub("", java_name)
    if comm.startswith("rocksdb:"):
        return "RocksDB background (flush, compaction)"
    if comm.startswith(cpu.JIT_THREADS):
        return "JIT compiler"
    if comm.startswith(("GC ", "VM Thread", "G1 ")):
        return "GC and VM"
    return "other JVM threads"


def report(figure: throughput.Figure, thread_seconds: dict[int, tuple[str, float]], samples: list[dict]) -> str:
    names = {}  # os thread id -> Java name, for every thread JFR saw
    kinds: collections.Counter[str] = collections.Counter()
    for sample in samples:
        thread = sample["values"]["sampledThread"]
        names[thread["osThreadId"]] = thread["javaName"]
        if TASK_SUFFIX.search(thread["javaName"] or ""):
            frames = (sample["values"].get("stackTrace") or {}).get("frames") or []
            kinds[_kind(frames)] += 1
    groups: collections.Counter[str] = collections.Counter()
    for tid, (comm, seconds) in thread_seconds.items():
        groups[_group(comm, names.get(tid))] += seconds
    total = sum(groups.values())
    task_seconds = sum(seconds for group, seconds in groups.items() if group.startswith("task: "))
    lines = [f"## Profile: {figure.name}", "",
             f"{figure.events:,} events in {figure.seconds:.1f} s: {figure.rate:,.0f} events/s, "
             f"{figure.per_core_second:,.0f} per core-second ({figure.cpu_seconds:.1f} CPU-s; threads add up to "
             f"{total:.1f} CPU-s over the run).", "",
             "| Threads | CPU-s | share |", "| --- | ---: | ---: |"]
    lines += [f"| {group} | {seconds:.1f} | {seconds / total:.0%} |" for group, seconds in groups.most_common()]
    counted = sum(kinds.values())
    lines += ["", f"Task threads ({task_seconds:.1f} CPU-s) by kind of work, from {counted:,} JFR samples:", "",
              "| Kind of work | share of samples | ≈ CPU-s |", "| --- | ---: | ---: |"]
    lines += [f"| {kind} | {count / counted:.0%} | {task_seconds * count / counted:.1f} |"
              for kind, count in kinds.most_common()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default=throughput.ROCKSDB_REFERENCE, choices=list(throughput.BY_NAME))
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--warmup", type=int, default=100_000)
    args = parser.parse_args()
    throughput.input_path(args.events, throughput.PARALLELISM)
    recording = PERF_DIR / f"profile-{re.sub(r'[^a-z0-9]+', '-', args.variant.lower()).strip('-')}.jfr"
    figure, thread_seconds = record(args.variant, args.events, args.warmup, recording)
    print(report(figure, thread_seconds, _samples(recording)))
    print(f"recording: {recording}")


if __name__ == "__main__":
    main()
