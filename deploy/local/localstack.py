"""Real LocalStack (Kinesis + S3) without Docker: installed into ``.local/localstack``, started and
stopped like the other local services.

Install (pinned, from the registries only): a Python 3.13 venv (LocalStack 4.14 does not import on
3.11) with ``localstack-core[runtime]==4.14.0``, resolved as of a fixed upload date (later cbor2 and
pyOpenSSL releases break its start: "No component plugins found"), and kinesis-mock from npm
(``kinesis-local``) placed where LocalStack's kinesis package looks for it, so the start downloads
nothing. Each port gets its own FILESYSTEM_ROOT (LocalStack empties its tmp folder at start and
stop) whose ``var/lib/localstack/lib`` points at the one shared lib folder.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from localstack_client import config as localstack_config

from deploy.local import process
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)

VERSION = "4.14.0"
REQUIREMENT = f"localstack-core[runtime]=={VERSION}"
RESOLVED_AS_OF = "2026-03-23T00:00:00Z"  # pip --uploaded-prior-to: the dependency set that starts
KINESIS_MOCK = ("kinesis-local", "0.5.2")  # LocalStack 4.14's pinned kinesis-mock (node engine)
RUNTIME_MODULE = "localstack.runtime.main"
START_TIMEOUT_S = 60.0


class LocalStackError(RuntimeError):
    pass


def home(state: StateDirs) -> Path:
    return state.root / "localstack"


def venv_python(state: StateDirs) -> Path:
    return home(state) / "venv" / "bin" / "python"


def _lib(state: StateDirs) -> Path:
    return home(state) / "lib"


def _kinesis_mock_main(state: StateDirs) -> Path:
    # localstack.packages.core.NodePackageInstaller: `npm install --prefix <lib>/<name>/<version>`,
    # installed when <that>/node_modules/<name>/main.js exists.
    name, version = KINESIS_MOCK
    return _lib(state) / name / version / "node_modules" / name / "main.js"


def is_installed(state: StateDirs) -> bool:
    return venv_python(state).exists() and _has_runtime(state) and _kinesis_mock_main(state).exists()


def _has_runtime(state: StateDirs) -> bool:
    found = subprocess.run([str(venv_python(state)), "-c", "import localstack.version as v; print(v.__version__)"],
                           capture_output=True, text=True)
    return found.returncode == 0 and found.stdout.strip() == VERSION


def find_python313() -> str:
    """``LOCALSTACK_PYTHON``, else ``python3.13`` on PATH, else pyenv's newest 3.13."""
    candidates = [os.environ.get("LOCALSTACK_PYTHON"), shutil.which("python3.13")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.13*/bin/python3.13"), reverse=True)
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
                                        capture_output=True).returncode == 0:
            return candidate
    raise LocalStackError("LocalStack 4.14 needs Python 3.13 and none was found (tried LOCALSTACK_PYTHON, "
                          "python3.13 on PATH, pyenv's versions/3.13*); install one or set LOCALSTACK_PYTHON")


def install(state: StateDirs) -> float:
    """Install what is missing; returns the seconds it took (about 0 when all is there)."""
    started = time.monotonic()
    if not (venv_python(state).exists() and _has_runtime(state)):
        _run([find_python313(), "-m", "venv", "--clear", str(home(state) / "venv")])
        pip = [str(venv_python(state)), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
        _run([*pip, "-U", "pip>=26"])  # --uploaded-prior-to is pip 26's
        _run([*pip, "--uploaded-prior-to", RESOLVED_AS_OF, REQUIREMENT])
    if not _kinesis_mock_main(state).exists():
        if not shutil.which("npm"):
            raise LocalStackError("kinesis-mock comes from npm and `npm` is not on PATH (apt-get install npm)")
        name, version = KINESIS_MOCK
        _run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(_lib(state) / name / version),
              f"{name}@{version}"])
    return time.monotonic() - started


def _run(cmd: list[str]) -> None:
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise LocalStackError(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _filesystem_root(state: StateDirs, port: int) -> Path:
    root = home(state) / f"root-{port}"
    lib_link = root / "var" / "lib" / "localstack" / "lib"
    if not lib_link.is_symlink():
        lib_link.parent.mkdir(parents=True, exist_ok=True)
        lib_link.symlink_to(_lib(state).resolve(), target_is_directory=True)
    return root


def environment(state: StateDirs, host: str, port: int) -> dict[str, str]:
    """LocalStack's settings for a host process serving Kinesis and S3 on ``host:port``."""
    return {
        # These machines carry Docker's container marker; in "container" mode LocalStack would use
        # (and rm -rf) system folders such as /var/lib/localstack and /tmp/localstack.
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(_filesystem_root(state, port)),
        "GATEWAY_LISTEN": f"{host}:{port}",
        "SERVICES": "kinesis,s3",
        "DNS_ADDRESS": "0",  # no DNS server on port 53
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",  # no analytics calls
        "KINESIS_PERSISTENCE": "0",
        # kinesis-mock's CREATE/DELETE_STREAM_DURATION etc.; LocalStack's default of 500 ms makes
        # every new stream wait half a second in CREATING.
        "KINESIS_LATENCY": "0",
    }


def client_endpoint() -> str:
    """Where localstack-client says LocalStack is: AWS_ENDPOINT_URL, else LOCALSTACK_HOST (host[:port],
    port 4566 if none), else http://localhost:4566. (It reads no EDGE_PORT: LocalStack retired that.)"""
    return localstack_config.get_service_endpoint("kinesis")


def pid_file(state: StateDirs, port: int) -> Path:
    return state.run / f"localstack-{port}.pid"


def log_file(state: StateDirs, port: int) -> Path:
    return state.logs / f"localstack-{port}.log"


def recorded_pid(state: StateDirs, port: int) -> int | None:
    return process.recorded_pid(pid_file(state, port), RUNTIME_MODULE)


def start(state: StateDirs, host: str, port: int, extra_env: dict[str, str] | None = None) -> int:
    """Start LocalStack on ``host:port`` and wait until its health check lists Kinesis and S3."""
    if not is_installed(state):  # the flag alone must do it on a fresh clone, as `make test` does
        log.info("LocalStack %s is not installed yet: installing it once into %s (~45 s)", VERSION, home(state))
        install(state)
    env = {**os.environ, **environment(state, host, port), **(extra_env or {})}
    pid = process.spawn([str(venv_python(state)), "-m", RUNTIME_MODULE], pid_file=pid_file(state, port),
                        log_file=log_file(state, port), env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.is_running(pid):
            raise LocalStackError(f"LocalStack exited at start; see {log_file(state, port)}")
        if _serves_kinesis_and_s3(f"http://{host}:{port}"):
            return pid
        time.sleep(0.2)
    process.stop(pid)
    raise LocalStackError(f"LocalStack did not answer on {host}:{port} within {START_TIMEOUT_S:.0f} s; "
                          f"see {log_file(state, port)}")


def health(url: str) -> dict[str, str] | None:
    """LocalStack's service states (``GET /_localstack/health``), or None if no LocalStack answers."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_localstack/health", timeout=2) as resp:
            body = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    services = body.get("services") if isinstance(body, dict) else None
    return services if isinstance(services, dict) else None


def _serves_kinesis_and_s3(url: str) -> bool:
    services = health(url) or {}
    return all(services.get(name) in ("available", "running") for name in ("kinesis", "s3"))


def stop_all(state: StateDirs) -> list[int]:
    """Stop every LocalStack ``up`` started (its pid files); one already running elsewhere is not ours."""
    stopped = process.stop_recorded(state.run.glob("localstack-*.pid"), RUNTIME_MODULE, timeout=20)
    for pid in stopped:
        log.info("stopped LocalStack pid %d", pid)
    return stopped
