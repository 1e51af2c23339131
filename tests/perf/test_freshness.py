"""The bench's fresh-read watcher sees an event exactly when a fresh read would count it: in a
version of its slice served by the poll's time that counts the user's events in the slice so far."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg

from jobs import feature_job
from tests.integration.stack import start_services, write_config
from tests.perf.feed import Probe
from tests.perf.freshness import FRESH_TABLE, FreshWatcher, fresh_keys

MINUTE_MS = 60_000


def test_fresh_keys_count_the_users_events_in_each_slice_in_feed_order():
    start = 1_000 * MINUTE_MS
    probes = [Probe(0, "t0", "u-a", start + 5), Probe(3, "t1", "u-b", start + 7), Probe(4, "t2", "u-a", start + 59_999),
              Probe(9, "t3", "u-a", start + MINUTE_MS), Probe(12, "t4", "u-a", start + 1)]
    assert fresh_keys(probes) == {0: ("u-a", start, 1), 3: ("u-b", start, 1), 4: ("u-a", start, 2),
                                  9: ("u-a", start + MINUTE_MS, 1), 12: ("u-a", start, 3)}


def test_watcher_sees_a_slice_version_once_served_and_counting_enough(tmp_path):
    config = write_config(tmp_path, "perf-freshness-test")
    settings = start_services(config)
    assert feature_job.main(["migrate", "--config", str(config)]) == 0
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    start_ms = (start - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    versions = [  # user, version, served_from, event_count
        ("u-served", 3, now - timedelta(seconds=6), 2),
        ("u-served", 4, now + timedelta(minutes=5), 5),  # not served yet: a read now takes version 3
        ("u-future", 1, now + timedelta(minutes=5), 9),
    ]
    with psycopg.connect(**settings.postgres.conninfo()) as connection:
        for user, version, served_from, events in versions:
            connection.execute(
                f"INSERT INTO {FRESH_TABLE} (user_id, window_start, window_end, slot, version, written_at, served_from, "
                "event_count, a_event_count, amount_sum) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0.0)",
                (user, start, start + timedelta(minutes=1), version % 2, version, served_from - timedelta(seconds=1),
                 served_from, events))
    wanted = {("u-served", start_ms, 2), ("u-served", start_ms, 3), ("u-future", start_ms, 1),
              ("u-served", start_ms + MINUTE_MS, 1)}
    watcher = FreshWatcher(settings.postgres.conninfo(), wanted)
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as connection:
        watcher._poll(connection)
    assert set(watcher.first_seen) == {("u-served", start_ms, 2)}
    assert watcher.waiting == wanted - {("u-served", start_ms, 2)}
