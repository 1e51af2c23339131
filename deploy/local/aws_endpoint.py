"""The Kinesis + S3 endpoint: reuse whatever already answers there, else start one.

Order: our own process (pid file), a LocalStack (``GET /_localstack/health``) or any endpoint that
answers Kinesis and S3 calls is used as it is; a free port gets what was asked for: the embedded
emulator (deploy/local/emulator.py, the default) or real LocalStack (deploy/local/localstack.py);
a port held by something that answers neither is an error, never silently shadowed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from deploy.local import aws, localstack, process
from deploy.local.config import REPO_ROOT, LocalSettings
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)

EMULATOR_MODULE = "deploy.local.emulator"
START_TIMEOUT_S = 30.0
CHOICES = ("emulator", "localstack")  # what `up --aws` starts on a free port


class EndpointError(RuntimeError):
    pass


@dataclass(frozen=True)
class EndpointStatus:
    url: str
    kind: str  # "emulator" (ours), "localstack" (ours if pid), "external", "aws" or "down"
    pid: int | None = None  # set when `up` started it (and `down` will stop it)

    def describe(self) -> str:
        if self.kind == "emulator":
            owner = f"embedded emulator, pid {self.pid}"
        elif self.kind == "localstack":
            owner = (f"LocalStack {localstack.VERSION}, started by `up`, pid {self.pid}" if self.pid
                     else "LocalStack, already running: used, never stopped by `down`")
        else:
            owner = self.kind
        return f"{self.url} ({owner})"


def _host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), parsed.port or (443 if parsed.scheme == "https" else 80)


def _pid_file(state: StateDirs, url: str) -> Path:
    return state.run / f"emulator-{_host_port(url)[1]}.pid"


def is_localstack(url: str) -> bool:
    return localstack.health(url) is not None


def serves_kinesis_and_s3(url: str, region: str) -> bool:
    try:
        aws.client("kinesis", url, region, timeout=3, retries=1).list_streams(Limit=1)
        aws.client("s3", url, region, path_style=True, timeout=3, retries=1).list_buckets()
    except Exception as exc:  # any failure means "not usable", the reason goes to the debug log
        log.debug("%s does not serve Kinesis+S3: %s", url, exc)
        return False
    return True


def _local_endpoints(settings: LocalSettings) -> list[str]:
    urls = [u for u in (settings.kinesis_endpoint, settings.s3_endpoint) if aws.is_local(u)]
    return list(dict.fromkeys(u.rstrip("/") for u in urls if u))


def status(settings: LocalSettings, state: StateDirs) -> list[EndpointStatus]:
    if not _local_endpoints(settings):
        return [EndpointStatus(url="(AWS default endpoints)", kind="aws")]
    result = []
    for url in _local_endpoints(settings):
        emulator_pid = process.recorded_pid(_pid_file(state, url), EMULATOR_MODULE)
        localstack_pid = localstack.recorded_pid(state, _host_port(url)[1])
        if emulator_pid is not None:
            result.append(EndpointStatus(url, "emulator", emulator_pid))
        elif localstack_pid is not None:
            result.append(EndpointStatus(url, "localstack", localstack_pid))
        elif is_localstack(url):
            result.append(EndpointStatus(url, "localstack"))
        elif serves_kinesis_and_s3(url, settings.region):
            result.append(EndpointStatus(url, "external"))
        else:
            result.append(EndpointStatus(url, "down"))
    return result


def _start_emulator(url: str, settings: LocalSettings, state: StateDirs) -> EndpointStatus:
    host, port = _host_port(url)
    pid = process.spawn([sys.executable, "-m", EMULATOR_MODULE, "--host", host, "--port", str(port)],
                        pid_file=_pid_file(state, url), log_file=state.logs / f"emulator-{port}.log",
                        cwd=REPO_ROOT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.is_running(pid):
            raise EndpointError(f"emulator exited at start; see {state.logs / f'emulator-{port}.log'}")
        if process.port_open(host, port) and serves_kinesis_and_s3(url, settings.region):
            return EndpointStatus(url, "emulator", pid)
        time.sleep(0.3)
    process.stop(pid)
    raise EndpointError(f"emulator did not answer on {url} within {START_TIMEOUT_S:.0f} s")


def _check_localstack_endpoints(settings: LocalSettings) -> None:
    """The config stays the one place that names the endpoint (the job reads it): localstack-client's
    endpoint (LOCALSTACK_HOST) is what it must say, not a silent override."""
    wanted = localstack.client_endpoint()
    configured = _local_endpoints(settings)
    if not configured:
        raise EndpointError(f"{settings.source_file}: LocalStack needs a local endpoint: set property group "
                            f"'source' key 'aws.endpoint' (and 'output' 's3.endpoint') to {wanted}")
    if (os.environ.get("LOCALSTACK_HOST") or os.environ.get("AWS_ENDPOINT_URL")) and \
            any(_host_port(url) != _host_port(wanted) for url in configured):
        raise EndpointError(f"localstack-client's endpoint (LOCALSTACK_HOST / AWS_ENDPOINT_URL) is {wanted} but "
                            f"{settings.source_file} says {', '.join(configured)}; make them agree")


def _start_localstack(url: str, state: StateDirs) -> EndpointStatus:
    host, port = _host_port(url)
    try:
        return EndpointStatus(url, "localstack", localstack.start(state, host, port))
    except localstack.LocalStackError as exc:
        raise EndpointError(str(exc)) from exc


def ensure(settings: LocalSettings, state: StateDirs, start: str = "emulator") -> list[EndpointStatus]:
    """Make every local endpoint in the config answer Kinesis and S3 calls; a free port gets
    ``start`` (one of CHOICES). Asked for LocalStack, a port already serving another endpoint is an
    error rather than a silent substitute."""
    if start not in CHOICES:
        raise EndpointError(f"unknown endpoint kind {start!r}; choose one of {', '.join(CHOICES)}")
    if start == "localstack":
        _check_localstack_endpoints(settings)
    found = status(settings, state)
    for current in found:  # before starting anything
        if start == "localstack" and current.kind in ("emulator", "external"):
            raise EndpointError(f"{current.describe()} answers there, not LocalStack; stop it (`down`) or "
                                "point source.aws.endpoint / output.s3.endpoint in the config at another port")
    result = []
    for current in found:
        if current.kind != "down":
            log.info("endpoint %s", current.describe())
            result.append(current)
            continue
        host, port = _host_port(current.url)
        if process.port_open(host, port):
            raise EndpointError(
                f"{host}:{port} is taken by something that is neither LocalStack nor a Kinesis+S3 "
                "endpoint; stop it or change source.aws.endpoint / output.s3.endpoint in the config")
        if start == "localstack":
            result.append(_start_localstack(current.url, state))
        else:
            result.append(_start_emulator(current.url, settings, state))
    return result


def stop(state: StateDirs) -> list[str]:
    """Stop the emulators and LocalStacks ``up`` started (pid files); a reused one is left alone.
    Returns what was stopped, e.g. "emulator pid 12"."""
    emulators = process.stop_recorded(state.run.glob("emulator-*.pid"), EMULATOR_MODULE)
    for pid in emulators:
        log.info("stopped emulator pid %d", pid)
    return [f"emulator pid {pid}" for pid in emulators] + [f"LocalStack pid {pid}" for pid in localstack.stop_all(state)]
