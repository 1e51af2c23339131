"""The Kinesis + S3 endpoint: reuse whatever already answers there, else start the embedded emulator.

Order: a LocalStack (``GET /_localstack/health``) or any endpoint that answers Kinesis and S3 calls
is used as it is; a free port gets our emulator (deploy/local/emulator.py); a port held by something
that answers neither is an error, never silently shadowed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from deploy.local import aws, process
from deploy.local.config import REPO_ROOT, LocalSettings
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)

EMULATOR_MODULE = "deploy.local.emulator"
START_TIMEOUT_S = 30.0


class EndpointError(RuntimeError):
    pass


@dataclass(frozen=True)
class EndpointStatus:
    url: str
    kind: str  # "emulator" (ours), "localstack", "external", "aws" or "down"
    pid: int | None = None

    def describe(self) -> str:
        owner = f"embedded emulator, pid {self.pid}" if self.kind == "emulator" else self.kind
        return f"{self.url} ({owner})"


def _host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), parsed.port or (443 if parsed.scheme == "https" else 80)


def _pid_file(state: StateDirs, url: str) -> Path:
    return state.run / f"emulator-{_host_port(url)[1]}.pid"


def is_localstack(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_localstack/health", timeout=2) as resp:
            body = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(body, dict) and "services" in body


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
        pid = process.recorded_pid(_pid_file(state, url), EMULATOR_MODULE)
        if pid is not None:
            result.append(EndpointStatus(url, "emulator", pid))
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


def ensure(settings: LocalSettings, state: StateDirs) -> list[EndpointStatus]:
    """Make every local endpoint in the config answer Kinesis and S3 calls."""
    result = []
    for current in status(settings, state):
        if current.kind != "down":
            log.info("endpoint %s", current.describe())
            result.append(current)
            continue
        host, port = _host_port(current.url)
        if process.port_open(host, port):
            raise EndpointError(
                f"{host}:{port} is taken by something that is neither LocalStack nor a Kinesis+S3 "
                "endpoint; stop it or change source.aws.endpoint / output.s3.endpoint in the config")
        result.append(_start_emulator(current.url, settings, state))
    return result


def stop(state: StateDirs) -> list[int]:
    """Stop the emulators ``up`` started (pid files); a reused LocalStack is left alone."""
    stopped = []
    for pid_file in sorted(state.run.glob("emulator-*.pid")):
        pid = process.recorded_pid(pid_file, EMULATOR_MODULE)
        if pid is not None:
            process.stop(pid)
            stopped.append(pid)
            log.info("stopped emulator pid %d", pid)
        pid_file.unlink(missing_ok=True)
    return stopped
