"""The plan fingerprint: equal when a snapshot restore is safe, different when a feature is added,
removed or edited (the cases that give stateful operators new IDs or a new state layout)."""

from __future__ import annotations

import json
import shutil

from jobs import feature_job
from jobs.streaming.plan_fingerprint import Fingerprint, compare
from tests.sql.test_backfill_oracle import CONFIG
from tests.sql.test_commands import copy_sql


def _fingerprint(capsys, config=CONFIG, sql_dir=None) -> Fingerprint:
    args = ["fingerprint", "--config", str(config)] + (["--sql-dir", str(sql_dir)] if sql_dir else [])
    assert feature_job.main(args) == 0
    return Fingerprint.from_json(json.loads(capsys.readouterr().out))


def test_same_sql_and_a_changed_runtime_value_keep_the_fingerprint(capsys, tmp_path):
    first = _fingerprint(capsys)
    changed = tmp_path / "changed.json"
    changed.write_text(CONFIG.read_text().replace('"batch.size": "500"', '"batch.size": "200"')
                       .replace('"watermark.delay.seconds": "30"', '"watermark.delay.seconds": "45"'))
    assert changed.read_text() != CONFIG.read_text()
    again = _fingerprint(capsys, changed)
    assert again == first and compare(first, again).restorable
    assert any(d.startswith("Deduplicate") for _, d in first.operators)
    # 2 features, their markers and the 5-minute group's fresh deltas; its fresh totals
    assert sum(d.startswith("WindowAggregate") for _, d in first.operators) == 5
    assert sum(d.startswith("OverAggregate") for _, d in first.operators) == 1


def test_added_removed_and_edited_features_change_it(capsys, tmp_path):
    base = _fingerprint(capsys)
    added_sql = copy_sql(tmp_path / "added")
    shutil.copy(added_sql / "examples" / "user_spend_buckets_1h.sql", added_sql / "features")
    added = compare(base, _fingerprint(capsys, sql_dir=added_sql))
    assert not added.restorable and added.added == ("user_spend_buckets_1h",)

    removed_sql = copy_sql(tmp_path / "removed")
    (removed_sql / "features" / "user_activity_1h.sql").unlink()
    removed = compare(base, _fingerprint(capsys, sql_dir=removed_sql))
    assert not removed.restorable and removed.removed == ("user_activity_1h",)

    edited_sql = copy_sql(tmp_path / "edited")
    feature = edited_sql / "features" / "user_activity_5m.sql"
    feature.write_text(feature.read_text().replace("COUNT(*) FILTER (WHERE event_type = 'A')",
                                                   "COUNT(*) FILTER (WHERE event_type = 'B')"))
    edited = compare(base, _fingerprint(capsys, sql_dir=edited_sql))
    assert not edited.restorable and edited.edited == ("user_activity_5m",) and not edited.added
    assert "user_activity_5m" in edited.describe()
