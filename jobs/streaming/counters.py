"""Log the pipeline's counters while a local job runs.

The counters themselves are Flink metrics (sql/sinks/counters.sql and the derived
``<feature>__counter`` sinks): each is the numRecordsIn of a blackhole sink, summed over subtasks.
Locally this reads them from the MiniCluster's REST API and logs one line per interval, e.g.

    counters: read=2220 malformed=20 late=52 duplicates_dropped=148 emitted user_activity_5m=447 ...

A feature's window operator also counts the records it drops because their windows have already
fired (Flink's ``numLateRecordsDropped``): events that passed the late filter, which judges them by
the source's watermark, yet arrived behind the window operator's own watermark — restored from the
checkpoint after a restart, or ahead of the filter's after an idle shard woke up. They count in no
feature and are not in the late output, so they are logged as ``dropped_by_window <feature>=N``.

Flink's REST API refreshes each vertex's metrics on its own (every ~10 s), so one line can mix
counters of slightly different ages (duplicates_dropped can even dip below zero for a moment);
they settle once the data stops. On Managed Flink the same metrics are in CloudWatch
(operator-level metrics); nothing is polled.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

# "<subtask>.<sink table>[<node id>]__Writer.numRecordsIn" as the REST API lists a vertex's metrics.
_COUNTER_METRIC = re.compile(r"^(\d+)\.(counter_\w+|\w+__counter)\[\d+\]__Writer\.numRecordsIn$")
# A window operator's drops; its feature is the one whose counter sink is chained in the same vertex
# (the progress markers' window operators have no counter sink, and drop nothing the feature kept).
_DROPPED_METRIC = re.compile(r"^(\d+)\.WindowAggregate\[\d+\]\.numLateRecordsDropped$")
_FEATURE_OF_VERTEX = re.compile(r"\b(\w+)__counter\[\d+\]")
DROPPED_SUFFIX = "__dropped_by_window"
_PORTS = range(8081, 8100)  # jobs.streaming.environment binds the web UI to the first free one of these


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def find_rest_base(job_id: str) -> str | None:
    """The local web UI serving this job (several local jobs may run side by side)."""
    for port in _PORTS:
        base = f"http://127.0.0.1:{port}"
        try:
            _get(f"{base}/jobs/{job_id}")
            return base
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return None


def read_counters(base: str, job_id: str) -> dict[str, int]:
    """Counter name -> value summed over subtasks (table names with the counter prefix/suffix)."""
    totals: dict[str, int] = {}
    for vertex in _get(f"{base}/jobs/{job_id}")["vertices"]:
        url = f"{base}/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        feature = _FEATURE_OF_VERTEX.search(vertex["name"])
        names = {m["id"]: _counter_name(m["id"], feature) for m in _get(url)}
        names = {metric: name for metric, name in names.items() if name}
        if not names:
            continue
        for metric in _get(f"{url}?{urllib.parse.urlencode({'get': ','.join(names)})}"):
            name = names[metric["id"]]
            totals[name] = totals.get(name, 0) + int(float(metric["value"]))
    return totals


def _counter_name(metric_id: str, feature: re.Match[str] | None) -> str | None:
    """The counter a vertex metric adds to, if any."""
    counter = _COUNTER_METRIC.match(metric_id)
    if counter:
        return counter.group(2)
    if feature and _DROPPED_METRIC.match(metric_id):
        return feature.group(1) + DROPPED_SUFFIX
    return None


def describe(totals: dict[str, int]) -> str:
    """One log line; duplicates dropped = on-time valid records the dedup did not pass on."""
    get = totals.get
    parts = [f"read={get('counter_records_read', 0)}", f"malformed={get('counter_malformed', 0)}",
             f"late={get('counter_late', 0)}",
             f"duplicates_dropped={get('counter_on_time', 0) - get('counter_deduplicated', 0)}"]
    parts += [f"emitted {name.removesuffix('__counter')}={value}"
              for name, value in sorted(totals.items()) if name.endswith("__counter")]
    parts += [f"dropped_by_window {name.removesuffix(DROPPED_SUFFIX)}={value}"
              for name, value in sorted(totals.items()) if name.endswith(DROPPED_SUFFIX)]
    return "counters: " + " ".join(parts)


def start_logging(job_id: str, interval_seconds: int) -> threading.Event:
    """Log the counters every ``interval_seconds`` until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        base = None
        while not stop.wait(interval_seconds):
            try:
                base = base or find_rest_base(job_id)
                if base:
                    log.info(describe(read_counters(base, job_id)))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
                log.debug("counters not available yet: %s", error)

    threading.Thread(target=loop, name="counter-log", daemon=True).start()
    return stop
