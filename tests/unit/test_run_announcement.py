"""`run` announces its decision ("run: upgrade: ...") only once the state file holds it: whoever
watches the log for that line (a test, an operator) then reads the new cut-over from pipeline.json."""

import argparse

from jobs.definitions.replay import Cut
from jobs.operations import start
from jobs.streaming.plan_fingerprint import Fingerprint


def _run(monkeypatch, dry_run: bool) -> list[str]:
    steps: list[str] = []
    decided = start._Start("upgrade: added a group", built=None, fingerprint=Fingerprint((), {}),
                           cut=Cut("fp", None), forget_checkpoints=True)
    monkeypatch.setattr(start.credentials, "sink_password", lambda config: "")
    monkeypatch.setattr(start.upgrade, "hold_lock", lambda config: None)
    monkeypatch.setattr(start, "_local_start", lambda args, config, password: decided)
    monkeypatch.setattr(start.environment, "forget_checkpoints", lambda config: steps.append("forget"))
    monkeypatch.setattr(start.upgrade, "write_state", lambda config, state: steps.append("state"))
    monkeypatch.setattr(start, "print", lambda text, flush: steps.append(text), raising=False)
    monkeypatch.setattr(start, "_execute", lambda args, built: steps.append("execute") or 0)
    assert start.run(argparse.Namespace(managed=None, dry_run=dry_run), config=None) == 0
    return steps


def test_the_decision_is_announced_after_the_state_file_holds_it(monkeypatch):
    assert _run(monkeypatch, dry_run=False) == ["forget", "state", "run: upgrade: added a group", "execute"]


def test_a_dry_run_announces_and_changes_nothing(monkeypatch):
    assert _run(monkeypatch, dry_run=True) == ["run: upgrade: added a group"]
