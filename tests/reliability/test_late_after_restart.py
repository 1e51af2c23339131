"""Events the late filter lets through but a window operator drops are counted, not lost unseen.

After a restart the source's watermark starts from nothing while each window operator restores its
own from the checkpoint. A record read first after the restart, dated before windows that already
fired, passes the late filter (no watermark yet) and is then dropped by the window operators: it is
in no feature and not in the late output. The job must count it (``dropped_by_window <feature>``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

from jobs.definitions.config import load
from jobs.streaming.environment import latest_checkpoint
from tests import oracle
from tests.integration.stack import JobProcess, postgres_rows, s3_rows, wait_for
from tests.integration.test_end_to_end import _last_counters, _produce
from tests.reliability.test_faults import _scenario, _wait_for_everything
from tests.sql.test_backfill_oracle import DELAY, assert_matches

STRAGGLERS = 7


def _stragglers(now: datetime) -> list[str]:
    """New txids dated 2.5 hours ago, inside the windows the job emitted before its restart."""
    base = now - timedelta(hours=2, minutes=30)
    return [json.dumps({"txid": f"straggler-{n}", "user_id": f"u-{n}", "event_type": "A",
                        "event_time": int((base + timedelta(seconds=10 * n)).timestamp() * 1000), "amount": 1.0})
            for n in range(STRAGGLERS)]


def _checkpointed_after(config, moment: float) -> bool:
    """A retained checkpoint newer than ``moment`` (epoch seconds) exists."""
    newest = latest_checkpoint(load(config, "run"))
    return newest is not None and Path(urlparse(newest).path).stat().st_mtime > moment


def test_records_dropped_by_a_restored_window_operator_are_counted(tmp_path):
    config, settings, lines, flush, expected = _scenario(tmp_path, "late-restart", seed=43)
    lines = lines[:1200]
    expected = oracle.replay(lines, datetime.now(timezone.utc), DELAY)
    produced = lines + [flush]
    _produce(settings, produced, tmp_path)
    job = JobProcess(config, tmp_path / "job.log").start()
    try:
        _wait_for_everything(settings, expected, produced, job)
        settled = time.time()
        wait_for("a checkpoint after every window was written", lambda: _checkpointed_after(config, settled), job)
    finally:
        job.crash()
    stragglers = _stragglers(datetime.now(timezone.utc))
    _produce(settings, stragglers, tmp_path)
    resumed = JobProcess(config, tmp_path / "resumed.log").start()
    try:
        want = {"dropped_by_window_user_activity_5m": STRAGGLERS, "dropped_by_window_user_activity_1h": STRAGGLERS}
        wait_for("the window operators' drops in the counters", lambda: {
            key: _last_counters(resumed.log.read_text()).get(key) for key in want} == want, resumed, timeout=120)
        wait_for("the raw archive of the stragglers", lambda: len(s3_rows(settings, "_raw")) >= len(produced) + STRAGGLERS,
                 resumed)
    finally:
        resumed.stop()
    assert_matches(postgres_rows(settings, "user_activity_5m"), oracle.user_activity_5m(expected))
    assert_matches(postgres_rows(settings, "user_activity_1h"), oracle.user_activity_1h(expected))
    assert not [r for r in s3_rows(settings, "_late") if "straggler" in r["payload"]]  # the filter let them through
