"""Live through Kinesis, in real time: honest producers plus one whose clock runs 4 minutes fast,
while a model-like reader asks for features every second.

- The fast producer's events are valid (within events.future.skew.seconds of arrival) and count in
  their own windows, but must not move the watermark ahead of what has arrived: otherwise every
  honest event of the next ~4 minutes would be late and windows would fire early. The oracle gets
  each record's Kinesis arrival time and order from the job's raw archive.
- A training set built afterwards for the reader's (user, time) pairs gives exactly what serving
  gave at those times, not the windows emitted later.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from deploy.local import aws, producer
from jobs import feature_job
from jobs.reads.serving import OnlineStore
from jobs.reads.training import OfflineStore
from tests import oracle
from tests.integration.stack import (JobProcess, postgres_rows, s3_rows, same_value, start_services, wait_for,
                                     write_config)
from tests.sql.test_backfill_oracle import assert_matches

STREAM = "clock-skew"
DELAY = timedelta(seconds=5)  # a short delay so windows close within the test's few minutes
HONEST_JITTER_S = 2.0         # honest events are dated up to this long before they are sent
FAST_BY = timedelta(minutes=4)
LIVE_SECONDS = 120            # > 100 reads, one a second
# Production starts at or after this second of a minute, so that two minute boundaries (window
# ends) fall between the first event and the final watermark (LIVE_SECONDS - ~7 s later).
EARLIEST_SECOND = 10
USERS = [f"u-{n}" for n in range(6)] + ["u-fast"]


def _event(txid: str, user: str, moment: datetime, rng: random.Random) -> str:
    return json.dumps({"txid": txid, "user_id": user, "event_type": rng.choice("AAB"),
                       "event_time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
                       "amount": round(rng.uniform(1, 50), 2)})


def _produce_live(kinesis, stream: str, seconds: float) -> list[str]:
    """Every ~second: a few honest events dated just before now and one from the fast producer."""
    rng = random.Random(5)
    sent: list[str] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        now = datetime.now(timezone.utc)
        batch = [_event(f"h-{n}-{i}", rng.choice(USERS[:-1]), now - timedelta(seconds=rng.uniform(0, HONEST_JITTER_S)), rng)
                 for i in range(4)]
        batch.append(_event(f"fast-{n}", "u-fast", now + FAST_BY, rng))
        producer.put_batch(kinesis, stream, [{"Data": line.encode(), "PartitionKey": "p"} for line in batch])
        sent += batch
        n += 1
        time.sleep(1.0)
    return sent


def _arrival_order(raw_rows: list[dict]) -> tuple[list[str], list[datetime]]:
    rows = sorted(raw_rows, key=lambda r: (r["arrival_time"], r["shard_id"], r["sequence_number"].zfill(64)))
    arrivals = [r["arrival_time"] if r["arrival_time"].tzinfo else r["arrival_time"].replace(tzinfo=timezone.utc)
                for r in rows]
    return [r["payload"] for r in rows], arrivals


def _read_every_second(store: OnlineStore, stop: threading.Event, served: list) -> None:
    """What a model asking every second got: (moment, get_features as of that moment)."""
    while not stop.wait(1.0):
        moment = datetime.now(timezone.utc).replace(tzinfo=None)
        served.append((moment, store.get_features(USERS, as_of=moment)))


def _markers(rows: list[dict]) -> set[tuple[str, datetime]]:
    return {(r["feature_group"], r["window_end"]) for r in rows}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    config = write_config(folder, STREAM, extra={"events": {"watermark.delay.seconds": str(int(DELAY.total_seconds()))}})
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    job = JobProcess(config, folder / "job.log").start()
    served: list = []
    stop = threading.Event()
    try:
        with OnlineStore.from_config_file(config) as store:
            reader = threading.Thread(target=_read_every_second, args=(store, stop, served), daemon=True)
            reader.start()
            try:
                time.sleep(max(0, EARLIEST_SECOND - datetime.now(timezone.utc).second))
                sent = _produce_live(aws.kinesis(settings), settings.stream_name, LIVE_SECONDS)
            finally:
                stop.set()
                reader.join()
        wait_for("the raw archive of every record", lambda: len(s3_rows(settings, "_raw")) >= len(sent), job)
        payloads, arrivals = _arrival_order(s3_rows(settings, "_raw"))
        # The watermark the job ends with (newest arrival-bounded event time - delay): windows that
        # end before it are closed and must be exact; the fast producer's windows are still open.
        final_watermark = max(min(oracle.parse_time(json.loads(p)["event_time"]), a)
                              for p, a in zip(payloads, arrivals)) - DELAY
        emitted = _markers(postgres_rows(settings, "feature_progress"))
        wait_for("every emitted window's marker in S3", lambda: emitted <= _markers(
            s3_rows(settings, "_progress/user_activity_5m") + s3_rows(settings, "_progress/user_activity_1h")), job)
        yield SimpleNamespace(settings=settings, config=config, job=job, served=served,
                              closed_before=(final_watermark - timedelta(seconds=1)).replace(tzinfo=None),
                              expected=oracle.replay(payloads, arrivals, DELAY))
    finally:
        job.stop()


def test_a_fast_client_clock_does_not_move_the_watermark(live):
    expected, settings, closed_before = live.expected, live.settings, live.closed_before
    assert not expected.late and not expected.quarantined  # the oracle's view: nobody is late
    want = {k: v for k, v in oracle.user_activity_5m(expected).items() if k[2] <= closed_before}
    assert len({k[2] for k in want}) >= 2, "the test needs closed windows to compare"
    wait_for("the closed windows' progress markers", lambda: {("user_activity_5m", k[2]) for k in want} <= _markers(
        postgres_rows(settings, "feature_progress")), live.job, timeout=60)
    time.sleep(3)  # the rows' own flush (rds.flush.interval.ms) may trail their marker
    rows = [r for r in postgres_rows(settings, "user_activity_5m") if r["window_end"] <= closed_before]
    late = s3_rows(settings, "_late")
    assert not late, f"{len(late)} honest events were dropped as late, e.g. {late[0]['payload']}"
    assert_matches(rows, want)
    assert not any(r["user_id"] == "u-fast" for r in rows)  # its windows lie 4 minutes ahead, still open


def test_a_training_set_gives_what_serving_gave_at_each_label_time(live):
    labels = [{"user_id": user, "timestamp": moment} for moment, _ in live.served for user in USERS]
    store = OfflineStore.from_config_file(live.config)
    training = iter(store.training_set(labels).to_pylist())
    complete = iter(store.training_set(labels, as_complete=True).to_pylist())
    later_windows = 0  # label times at which the dataset holds a newer window than serving had then
    for moment, served in live.served:
        for user in USERS:
            offline, as_complete = next(training), next(complete)
            for name, group in served["groups"].items():
                assert offline[f"{name}.window_end"] == group["window_end"], (name, user, moment)
                for column, value in served["users"][user][name].items():
                    assert same_value(offline[f"{name}.{column}"], value), (name, column, user, moment)
                later_windows += as_complete[f"{name}.window_end"] != group["window_end"]
    assert len(live.served) > 100 and later_windows > 0, (len(live.served), later_windows)
