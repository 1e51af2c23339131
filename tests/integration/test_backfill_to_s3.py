"""A backfill writes to the emulator's S3 from a process whose JVM started before it read its
config, as in a test worker that ran other tests first: the JVM's environment then lacks what the
config would have put there (the emulator's keys, the S3 plugin folder), so the S3 filesystem must
get them another way."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from tests import oracle
from tests.integration.stack import ROOT, clean_env, s3_rows, start_services, write_config
from tests.sql.test_backfill_oracle import DELAY, assert_matches, generate

# The gateway JVM first, then the backfill, in one process.
CHILD = """
import sys
from pyflink.java_gateway import get_gateway
from jobs import feature_job
get_gateway()
sys.exit(feature_job.main(sys.argv[1:]))
"""


def test_a_backfill_writes_s3_from_a_jvm_started_before_its_config_was_read(tmp_path):
    config = write_config(tmp_path, "backfill-late-keys")
    settings = start_services(config)
    now = datetime.now(timezone.utc)
    lines = [line for line in generate(seed=61, events=300, users=4, duplicate_share=0.1,
                                       start=now - timedelta(hours=3)) if line.strip()]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")

    result = subprocess.run(
        [sys.executable, "-c", CHILD, "backfill", "--config", str(config), "--input", str(source),
         "--output-dir", f"s3://{settings.bucket}/{settings.prefix}", "--include-partial-windows"],
        cwd=ROOT, env=clean_env(drop_aws=True), capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert_matches(s3_rows(settings, "user_activity_5m"), oracle.user_activity_5m(oracle.replay(lines, now, DELAY)))
