"""The local services are shared by every test that needs them, and by the parallel workers of
`make test` (pytest-xdist): tests that use them start them (`services.up` takes a lock), and the
session stops them at the end only if it started them. The end is the controlling process's, after
every worker has finished, so no worker stops a server another is still using."""

import os

import pytest

from deploy.local import config as local_config
from deploy.local import services
from deploy.local.state import DEFAULT_STATE

WERE_RUNNING = pytest.StashKey[bool]()

# Every JVM the tests start reads JVM_ARGS: this process's PyFlink gateway, each job process, the
# cluster's JobManager and TaskManagers (Flink's scripts). They live seconds to minutes, so C2
# compilation and a parallel collector were mostly overhead: with C1 only and the serial collector
# a job test took 41 instead of 67 CPU-seconds. What the JVMs compute is the same.
os.environ.setdefault("JVM_ARGS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
# The job processes tests/integration/stack.py starts (most of the ~30) also skip the bytecode
# verifier for the classes they load (an idle test job: 18 instead of 21 CPU-seconds in its first
# 40 s). The classes are the same ones the demo, the packaged zip and the cluster tests load verified.
os.environ.setdefault("JOB_JVM_ARGS", "-XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _running(settings: local_config.LocalSettings) -> bool:
    now = services.status(settings, DEFAULT_STATE)
    return now.postgres.kind != "down" and all(e.kind != "down" for e in now.endpoints)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_worker(session.config):
        session.config.stash[WERE_RUNNING] = _running(local_config.load(local_config.DEFAULT_CONFIG))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _is_worker(session.config) and not session.config.stash.get(WERE_RUNNING, True):
        services.down(local_config.load(local_config.DEFAULT_CONFIG), DEFAULT_STATE)


# `make test` hands whole modules to its workers in collection order (--dist loadfile with
# --no-loadscope-reorder; xdist would otherwise order modules by their number of tests, which put
# the one-test modules that run a job for minutes last). Modules that run jobs and clusters come
# first and the many short ones fill the end, so neither worker finishes while the other still has
# minutes of work.
_FIRST_TO_LAST = ("tests/integration/", "tests/reliability/", "tests/sql/", "tests/perf/", "tests/unit/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((n for n, folder in enumerate(_FIRST_TO_LAST) if item.nodeid.startswith(folder)), len(_FIRST_TO_LAST))

    items.sort(key=rank)  # stable: each module's tests keep their order
