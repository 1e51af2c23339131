"""A standalone Flink session cluster from the installed PyFlink distribution (``pyflink/bin``),
set up the way Managed Flink runs the application, and the application zip submitted to it with
Managed Flink's run options.

  .local/cluster/conf/config.yaml   generated (FLINK_CONF_DIR): RocksDB, incremental checkpoints in
                                    s3://BUCKET/_flink/checkpoints of the local endpoint, parallelism
  .local/cluster/python/            the job's interpreter: PyFlink and its requirements only
  .local/cluster/properties.json    the runtime properties, in Managed Flink's format
  .local/logs/cluster/              JobManager, TaskManager and submit logs
  .local/run/cluster-*.pid          what `up` started (`down` stops only those)

One slot per TaskManager, so parallelism N spreads over N TaskManagers and a lost one is replaced
by starting another (what Kubernetes does with a TaskManager pod).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from deploy.local import process
from deploy.local.config import REPO_ROOT, LocalSettings
from deploy.local.state import StateDirs
from deploy.managed_flink import JAR_FILE, PY_FILES, PYTHON_ENTRY
from jobs.definitions.config import PROPERTIES_FILE_OVERRIDE

log = logging.getLogger(__name__)

PLUGINS_DIR = REPO_ROOT / "target" / "plugins"  # the S3 filesystem plugin deploy/pom.xml builds
# Sized for a small shared machine: what the job needs with RocksDB and headroom, no more.
JOBMANAGER_MEMORY = "1024m"
TASKMANAGER_MEMORY = "1536m"


class ClusterError(RuntimeError):
    """The cluster or a submission did not come up; the message says where to look."""


@dataclass(frozen=True)
class Ports:
    """Fixed, non-default ports, so the cluster never meets another Flink on this machine (8081,
    6123, random TaskManager ports). ``first`` starts a block of 100: the blob server's range,
    then three ports per TaskManager (RPC, data, metrics queries)."""

    rest: int = 18081
    rpc: int = 16123
    first: int = 16200

    def conf(self) -> dict[str, str]:
        return {"rest.port": str(self.rest), "jobmanager.rpc.port": str(self.rpc),
                "blob.server.port": f"{self.first}-{self.first + 9}",
                "metrics.internal.query-service.port": f"{self.first + 10}-{self.first + 19}"}  # the JobManager's

    def taskmanager(self, number: int) -> dict[str, str]:
        """Its own ports (TaskManagers on one host that share a range race for them at start)."""
        if not 1 <= number <= 26:
            raise ValueError(f"TaskManager numbers run from 1 to 26 (the block of 100 ports from {self.first}), got {number}")
        base = self.first + 20 + 3 * number
        return {"taskmanager.rpc.port": str(base), "taskmanager.data.port": str(base + 1),
                "metrics.internal.query-service.port": str(base + 2)}


@dataclass(frozen=True)
class Cluster:
    state: StateDirs
    ports: Ports = Ports()

    @property
    def root(self) -> Path:
        return self.state.root / "cluster"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def python_dir(self) -> Path:
        return self.root / "python"

    @property
    def python(self) -> Path:
        return self.python_dir / "bin" / "python"

    @property
    def properties_file(self) -> Path:
        return self.root / "properties.json"

    @property
    def log_dir(self) -> Path:
        return self.state.logs / "cluster"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.ports.rest}"

    def pid_file(self, name: str) -> Path:
        return self.state.run / f"cluster-{name}.pid"

    def recorded(self, name: str) -> int | None:
        # The conf dir is on the JVM's command line (its log4j file), so a recycled pid never matches.
        return process.recorded_pid(self.pid_file(name), str(self.conf_dir))


def flink_home() -> Path:
    """The Flink distribution inside the installed apache-flink package (bin/ conf/ lib/ opt/)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def checkpoint_uri(settings: LocalSettings) -> str:
    return f"s3://{settings.bucket}/_flink/checkpoints"


def _distribution_java_options() -> str:
    """The JVM options the distribution's own config.yaml sets (the --add-opens Java 17 needs)."""
    from ruamel.yaml import YAML  # a requirement of apache-flink

    shipped = YAML(typ="safe").load((flink_home() / "conf" / "config.yaml").read_text())
    return shipped["env"]["java"]["opts"]["all"]


def flink_conf(cluster: Cluster, settings: LocalSettings, parallelism: int, checkpoint_seconds: int) -> dict[str, str]:
    """config.yaml: what Managed Flink sets for an application (RocksDB, incremental checkpoints in
    S3, exactly once, restarts from the last checkpoint), plus this machine's ports and sizes."""
    python = str(cluster.python)
    conf = {
        "jobmanager.rpc.address": "localhost", "jobmanager.bind-host": "localhost",
        "taskmanager.host": "localhost", "taskmanager.bind-host": "localhost",
        "rest.address": "localhost", "rest.bind-address": "localhost",
        **cluster.ports.conf(),
        "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
        "taskmanager.memory.process.size": TASKMANAGER_MEMORY,
        "taskmanager.numberOfTaskSlots": "1",
        "parallelism.default": str(parallelism),
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
        "execution.checkpointing.dir": checkpoint_uri(settings),
        "execution.checkpointing.interval": f"{checkpoint_seconds} s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": "30 s",
        # A killed TaskManager is noticed in seconds, not the default 50.
        "heartbeat.interval": "2000", "heartbeat.timeout": "10000",
        # A TaskManager up before the JobManager retries in a second, not the default 10.
        "cluster.registration.error-delay": "1 s",
        # The job's Python (client side and UDF workers): PyFlink and its requirements, nothing else.
        "python.executable": python, "python.client.executable": python,
        "env.java.opts.all": f"{_distribution_java_options()} -Duser.timezone=UTC",
        "io.tmp.dirs": str(cluster.root / "tmp"),
    }
    if settings.s3_endpoint:  # the flink-s3-fs-hadoop plugin: checkpoints and the Parquet sink
        conf.update({"s3.endpoint": settings.s3_endpoint, "s3.path.style.access": str(settings.s3_path_style).lower(),
                     "s3.access-key": "test", "s3.secret-key": "test"})
    return conf


def write_conf(cluster: Cluster, conf: dict[str, str]) -> None:
    cluster.conf_dir.mkdir(parents=True, exist_ok=True)
    # Flat keys with JSON-quoted values: valid YAML whatever a value holds.
    lines = [f"{key}: {json.dumps(value)}" for key, value in conf.items()]
    (cluster.conf_dir / "config.yaml").write_text("\n".join(lines) + "\n")
    for name in ("log4j-console.properties", "log4j-cli.properties"):
        shutil.copyfile(flink_home() / "conf" / name, cluster.conf_dir / name)


def ensure_python(cluster: Cluster) -> Path:
    """A venv that sees only PyFlink and its requirements: what Managed Flink's Python has before
    the zip's lib/python is added. Its site-packages links to the installed files of exactly
    those distributions (the same files `pip install apache-flink` would put there, in about a
    second instead of a minute of download and unpacking), so the machine's other packages
    (psycopg, boto3 ... for the tests) cannot stand in for what the zip must bring."""
    from deploy.managed_flink.package import requirement_closure

    # setuptools: apache-beam (PyFlink's Python workers) imports pkg_resources without requiring it;
    # a venv on Python 3.11 always has it, and so has Managed Flink's Python.
    distributions = requirement_closure(["apache-flink", "setuptools"])
    inventory = "".join(f"{d.metadata['Name']}=={d.version}\n" for d in distributions)
    marker = cluster.python_dir / "distributions.txt"  # written last: a complete env
    if cluster.python.exists() and marker.is_file() and marker.read_text() == inventory:
        return cluster.python
    shutil.rmtree(cluster.python_dir, ignore_errors=True)
    venv.EnvBuilder(symlinks=True, with_pip=False).create(cluster.python_dir)
    site = cluster.python_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for distribution in distributions:
        for file in distribution.files or ():
            relative = PurePosixPath(file.as_posix())
            source = Path(str(distribution.locate_file(file)))
            if relative.parts[0] == ".." or not source.is_file():
                continue  # console scripts outside site-packages
            target = site / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(source)
    marker.write_text(inventory)
    return cluster.python


def _environment(cluster: Cluster, **extra: str) -> dict[str, str]:
    """This process's environment without what would tie Flink to it (a PyFlink gateway, PYTHONPATH,
    JVM options, other Flink folders), plus the cluster's folders and the emulator's settings:
    any key works there, and the Kinesis connector's AWS SDK must speak JSON, not CBOR, which the
    moto emulator cannot read (its system property is relocated by the jar's shading; this
    variable is not)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYFLINK", "FLINK", "JAVA_TOOL", "_FLINK")) and key != "PYTHONPATH"}
    env.update({"FLINK_CONF_DIR": str(cluster.conf_dir), "FLINK_LOG_DIR": str(cluster.log_dir),
                "FLINK_PID_DIR": str(cluster.root / "run"), "FLINK_PLUGINS_DIR": str(PLUGINS_DIR)})
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_CBOR_DISABLE", "true")):
        env.setdefault(key, value)
    env.update(extra)
    return env


def _start(cluster: Cluster, name: str, script: str, *args: str) -> int:
    pid = cluster.recorded(name)
    if pid:
        return pid
    return process.spawn([str(flink_home() / "bin" / script), "start-foreground", *args],
                         pid_file=cluster.pid_file(name), log_file=cluster.log_dir / f"{name}.out",
                         env=_environment(cluster, FLINK_IDENT_STRING=name))


def start_taskmanager(cluster: Cluster, number: int) -> int:
    """TaskManager ``number`` (1, 2, ...; a replacement takes the next free number)."""
    options = {**cluster.ports.taskmanager(number), "taskmanager.resource-id": f"taskmanager-{number}"}
    return _start(cluster, f"taskmanager-{number}", "taskmanager.sh",
                  *(item for key, value in options.items() for item in ("-D", f"{key}={value}")))


def rest(cluster: Cluster, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(cluster.rest_url + path, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def overview(cluster: Cluster) -> dict[str, Any] | None:
    try:
        return rest(cluster, "/overview")
    except (OSError, urllib.error.URLError, ValueError):
        return None


def wait_for_slots(cluster: Cluster, slots: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = overview(cluster)
        if found and found.get("slots-total", 0) >= slots:
            return
        time.sleep(0.5)
    raise ClusterError(f"the cluster at {cluster.rest_url} did not offer {slots} slot(s) within {timeout:.0f} s; "
                       f"logs in {cluster.log_dir}")


def up(cluster: Cluster, settings: LocalSettings, *, parallelism: int, checkpoint_seconds: int = 10) -> float:
    """Write the conf, make the Python env, start a JobManager and ``parallelism`` TaskManagers
    (what is already running is kept); returns the seconds it took."""
    started = time.monotonic()
    if not (PLUGINS_DIR / "s3-fs-hadoop").is_dir():
        raise ClusterError(f"{PLUGINS_DIR}/s3-fs-hadoop missing: build it with `make jar`")
    cluster.state.ensure()
    ensure_python(cluster)
    write_conf(cluster, flink_conf(cluster, settings, parallelism, checkpoint_seconds))
    _start(cluster, "jobmanager", "jobmanager.sh")
    for number in range(1, parallelism + 1):
        start_taskmanager(cluster, number)
    wait_for_slots(cluster, parallelism)
    return time.monotonic() - started


def started_processes(cluster: Cluster) -> dict[str, int]:
    """Name -> pid of the cluster processes `up` (or a replacement) started and still running."""
    names = sorted(path.name.removeprefix("cluster-").removesuffix(".pid") for path in cluster.state.run.glob("cluster-*.pid"))
    return {name: pid for name in names if (pid := cluster.recorded(name))}


def down(cluster: Cluster) -> list[str]:
    """Stop what was started here, TaskManagers first (jobs keep their retained checkpoints)."""
    stopped = []
    for name, pid in sorted(started_processes(cluster).items(), key=lambda item: item[0] == "jobmanager"):
        process.stop(pid, timeout=20)
        cluster.pid_file(name).unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def properties_json(config_path: Path, settings: LocalSettings) -> str:
    """The local config as Managed Flink writes it to /etc/flink/application_properties.json (the
    deploy code's own mapping, run options included), pointing at the cluster's checkpoints."""
    from deploy.managed_flink.settings import runtime_property_groups
    from jobs.definitions.config import parse_property_groups

    groups = parse_property_groups(config_path.read_text(encoding="utf-8"), str(config_path))
    groups.setdefault("job", {})["checkpoint.dir"] = checkpoint_uri(settings)
    return json.dumps(list(runtime_property_groups(groups, str(config_path))), indent=2)


def submit(cluster: Cluster, application_zip: Path, properties: str) -> str:
    """Unpack the zip alone in a temporary folder and run it there with Managed Flink's run options
    (`flink run -d --python ... --jarfile ... --pyFiles ...`); returns the job id. The folder is
    deleted afterwards: the cluster must hold everything the job needs (restarts included)."""
    cluster.properties_file.parent.mkdir(parents=True, exist_ok=True)
    cluster.properties_file.write_text(properties)
    cluster.log_dir.mkdir(parents=True, exist_ok=True)
    application = Path(tempfile.mkdtemp(prefix="flink-application-"))
    try:
        with zipfile.ZipFile(application_zip) as archive:
            archive.extractall(application)
        command = [str(flink_home() / "bin" / "flink"), "run", "-d", "--python", PYTHON_ENTRY,
                   "--jarfile", JAR_FILE, "--pyFiles", PY_FILES]
        env = _environment(cluster, **{PROPERTIES_FILE_OVERRIDE: str(cluster.properties_file)})
        with open(cluster.log_dir / "submit.log", "a") as out:
            out.write(f"$ {' '.join(command)}  (in {application})\n")
            out.flush()
            result = subprocess.run(command, cwd=application, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, timeout=300)
            out.write(result.stdout)
    finally:
        shutil.rmtree(application, ignore_errors=True)
    found = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
    if result.returncode != 0 or not found:
        tail = "\n".join(result.stdout.splitlines()[-25:])
        raise ClusterError(f"`flink run` failed (exit {result.returncode}; {cluster.log_dir / 'submit.log'}):\n{tail}")
    return found.group(1)


def jobs(cluster: Cluster) -> list[dict[str, Any]]:
    found = rest(cluster, "/jobs/overview") or {}
    return found.get("jobs", [])


def cancel(cluster: Cluster, job_id: str) -> None:
    rest(cluster, f"/jobs/{job_id}?mode=cancel", method="PATCH")


def command(action: str, config_path: Path, settings: LocalSettings, state: StateDirs) -> list[str]:
    """`python -m deploy.local cluster up|submit|status|down`: what each did, as lines to print."""
    from jobs.definitions import config as job_config

    running = Cluster(state)
    if action == "up":
        from deploy.local import services

        services.up(settings, state)  # the stream, bucket and database the job needs
        job = job_config.load(config_path, "run")
        seconds = up(running, settings, parallelism=job.get_int("job", "parallelism"),
                     checkpoint_seconds=job.get_int("job", "checkpoint.interval.seconds"))
        return [f"cluster up in {seconds:.0f} s: web UI {running.rest_url}, checkpoints in {checkpoint_uri(settings)}",
                f"logs in {running.log_dir}"]
    if action == "submit":
        from deploy.managed_flink import package
        from jobs import feature_job

        if feature_job.main(["migrate", "--config", str(config_path)]) != 0:  # the job refuses missing tables
            raise ClusterError(f"migrate failed for {config_path}")
        job_id = submit(running, package.build().path, properties_json(config_path, settings))
        return [f"submitted job {job_id}: {running.rest_url}/#/job/running/{job_id}/overview",
                f"runtime properties: {running.properties_file}"]
    if action == "status":
        processes = started_processes(running)
        found = overview(running)
        if not found:
            return [f"no cluster answers on {running.rest_url}" + (f" (processes: {processes})" if processes else "")]
        lines = [f"cluster {running.rest_url}: {found['taskmanagers']} TaskManager(s), "
                 f"{found['slots-available']}/{found['slots-total']} slot(s) free; processes {processes}"]
        return lines + [f"job {job['jid']} {job['name']}: {job['state']}" for job in jobs(running)]
    if action == "down":
        stopped = down(running)
        return ["stopped: " + (", ".join(stopped) if stopped else "nothing (no cluster process was started here)")]
    raise ValueError(action)
