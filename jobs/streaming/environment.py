"""Create the TableEnvironment for one job, UTC end to end.

Locally the job runs in an embedded MiniCluster inside the PyFlink gateway JVM, so this module
also sets what a cluster would: the connector jar, checkpointing, parallelism, JVM options.
On Managed Flink the service owns those (and rejects code-set cluster keys that are not on its
allow-list), so there only ``table.*`` options and the job name are set.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import EnvironmentSettings, StreamTableEnvironment, TableEnvironment
from pyflink.util.java_utils import add_jars_to_context_class_loader

from jobs.definitions.config import PROJECT_ROOT, Config, is_aws_endpoint
from jobs.postgres import credentials

log = logging.getLogger(__name__)

JAR_NAME = "pyflink-dependencies.jar"
# Where the shaded jar lives: target/ after `make jar`, lib/ inside the Managed Flink zip.
JAR_CANDIDATES = (PROJECT_ROOT / "target" / JAR_NAME, PROJECT_ROOT / "lib" / JAR_NAME)
PLUGINS_DIR = PROJECT_ROOT / "target" / "plugins"
# Local MiniCluster working folders, one per job process (see working_dir).
WORKING_DIRS = PROJECT_ROOT / ".local" / "flink-work"


class SetupError(RuntimeError):
    """Something the job needs on this machine is missing."""


def find_jar() -> Path:
    override = os.environ.get("FEATURE_JOB_JAR")
    candidates = (Path(override),) if override else JAR_CANDIDATES
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SetupError(
        f"connector jar not found (looked at {', '.join(str(c) for c in candidates)}); "
        "build it with `make jar` (mvn -f deploy/pom.xml package)"
    )


def rest_port() -> str:
    """The local Flink web UI port: the first free one of 8081-8099 (FLINK_REST_PORT overrides),
    so a second local job or a test run beside a demo does not fail on a taken port."""
    return os.environ.get("FLINK_REST_PORT", "8081-8099")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def working_dir(root: Path = WORKING_DIRS) -> Path:
    """This process's MiniCluster working folder: its blob store holds a copy of the ~140 MB jar
    per job. Flink deletes it when a job ends, but not when the process is stopped or killed, so
    under the default (the system temp folder) every stopped local run left one behind until the
    disk filled. Folders of processes that are gone are removed here first."""
    for folder in root.glob("*"):
        if folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / str(os.getpid())
    mine.mkdir(parents=True, exist_ok=True)
    return mine


def _prepare_local_jvm() -> None:
    """Options for the gateway JVM PyFlink launches (it hosts the MiniCluster), set before its start.

    JAVA_TOOL_OPTIONS is read by every JVM and, unlike FLINK_ENV_JAVA_OPTS, does not replace
    PyFlink's own defaults (the --add-opens Java 17 needs).
    """
    wanted = "-Duser.timezone=UTC"
    opts = os.environ.get("JAVA_TOOL_OPTIONS", "")
    if wanted not in opts:
        os.environ["JAVA_TOOL_OPTIONS"] = f"{opts} {wanted}".strip()
    # Flink's own log (JobManager/TaskManager of the MiniCluster) next to the other local state,
    # not inside the installed PyFlink package.
    log_dir = PROJECT_ROOT / ".local" / "logs" / "flink"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", str(log_dir))


def _use_emulator_settings(config: Config) -> None:
    """For LocalStack or the embedded emulator: any key is accepted (real AWS keeps its own
    credential chain), and the Kinesis connector's AWS SDK v1 must speak JSON, not CBOR, which
    moto cannot read (harmless for LocalStack and kinesis-local)."""
    endpoints = [config.groups.get("source", {}).get("aws.endpoint", ""), config.groups.get("output", {}).get("s3.endpoint", "")]
    if not all(is_aws_endpoint(url) for url in endpoints):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        os.environ.setdefault("AWS_CBOR_DISABLE", "true")


def _use_secret_region(config: Config) -> None:
    """The JDBC sinks' Secrets Manager driver takes its region from AWS_SECRET_JDBC_REGION (before
    the AWS SDK's default chain): locally that is the secret ARN's region. Its endpoint, like
    boto3's, can be moved with AWS_ENDPOINT_URL_SECRETS_MANAGER (e.g. to the local emulator).
    On Managed Flink the SDK's default chain gives the application's region."""
    region = credentials.secret_region(config.groups.get("rds", {}).get("password.secret.arn", ""))
    if region:
        os.environ.setdefault("AWS_SECRET_JDBC_REGION", region)


def _s3_options(config: Config) -> dict[str, str]:
    """The S3 filesystem's settings for the output group's endpoint. For an emulator its keys too:
    this process's JVM may have started before `_use_emulator_settings` put them in the
    environment (a test process runs several configs), and a JVM's environment is fixed at start."""
    endpoint = config.groups.get("output", {}).get("s3.endpoint", "")
    if not endpoint:
        return {}
    options = {"s3.endpoint": endpoint, "s3.path.style.access": config.get("output", "s3.path.style.access")}
    if not is_aws_endpoint(endpoint) and "AWS_ACCESS_KEY_ID" in os.environ:
        options["s3.access-key"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["s3.secret-key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    return options


def _initialize_filesystems(config: Config) -> None:
    """Load the S3 filesystem plugin (target/plugins, built by deploy/pom.xml) the way a Flink
    cluster's entrypoint does.

    The local MiniCluster never initializes filesystems with plugins, so without this an s3://
    path fails with "Could not find a file system implementation for scheme 's3'". The folder is
    given here, not through FLINK_PLUGINS_DIR, for the same reason as the keys in `_s3_options`.
    """
    jvm = get_gateway().jvm
    flink_config = jvm.org.apache.flink.configuration.Configuration()
    for key, value in _s3_options(config).items():
        flink_config.setString(key, value)
    found = jvm.java.util.ArrayList()
    if PLUGINS_DIR.is_dir():
        folder = jvm.java.io.File(str(PLUGINS_DIR)).toPath()
        found = jvm.org.apache.flink.core.plugin.DirectoryBasedPluginFinder(folder).findPlugins()
    patterns = jvm.org.apache.flink.configuration.CoreOptions.getPluginParentFirstLoaderPatterns(flink_config)
    plugins = jvm.org.apache.flink.core.plugin.DefaultPluginManager(found, patterns)
    jvm.org.apache.flink.core.fs.FileSystem.initialize(flink_config, plugins)


def _table_options(config: Config, streaming_source: bool) -> dict[str, str]:
    options = {
        "table.local-time-zone": "UTC",
        # Bounds the dedup state (every txid seen); window state is freed by the watermark instead.
        "table.exec.state.ttl": f"{config.get_int('events', 'dedup.ttl.hours')} h",
        "pipeline.name": config.get("job", "name"),
        # Plan identical sub-plans of all INSERTs once: without it the planner parses each record
        # three times (features, quarantine, late/raw branches each get their own parse + watermark).
        "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
        # Aggregate each window in one step on the user's subtask. Flink's default pre-aggregates
        # per subtask first (local-global), which pays off for a few hot keys; with many users
        # each with a few events per window it combines almost nothing and costs an extra
        # buffer, serialization and merge (tests/perf/throughput.py: the default ran 12-20% slower).
        "table.optimizer.agg-phase-strategy": "ONE_PHASE",
        # A chained operator hands its record on without a copy (Flink's SQL operators copy what
        # they keep, and every test runs with it): +11% on the heap hot path in alternating
        # probes, within noise on RocksDB (README "Performance").
        "pipeline.object-reuse": "true",
        # Bloom filters in RocksDB's files: most look-ups miss (a new txid in the dedup, a user's
        # new slice in the windows), and a miss then skips the file instead of reading its blocks:
        # +22% on the RocksDB hot path in alternating probes, within noise in the 3-round bench.
        # Set by the job, it applies on Managed Flink too: Flink lays the job's configuration over
        # the cluster's when it builds the state backend.
        "state.backend.rocksdb.use-bloom-filter": "true",
    }
    if streaming_source:
        # An idle shard would otherwise hold the watermark back and no window would fire.
        options["table.exec.source.idle-timeout"] = f"{config.get_int('events', 'idle.timeout.seconds')} s"
    else:
        # Bounded input (backfill): emit the watermark after every record that raises it instead of
        # on a wall-clock timer, so which late records are dropped depends only on the input order.
        options["pipeline.auto-watermark-interval"] = "0 ms"
    return options


def _restart_options(streaming_source: bool) -> dict[str, str]:
    if not streaming_source:
        return {"restart-strategy.type": "none"}  # a backfill that fails should say so, not loop
    # A failing sink (say PostgreSQL down) fails the job; it restarts from the last checkpoint,
    # waiting 1 s, 2 s, 4 s ... at most 30 s between attempts, for as long as it takes.
    return {"restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1 s",
            "restart-strategy.exponential-delay.max-backoff": "30 s"}


def jar_option() -> dict[str, str]:
    """The connector jar for the local MiniCluster's tasks. As a class path, not `pipeline.jars`:
    those are uploaded to the blob server on every submission, and hashing and copying the 140 MB
    jar cost each local start ~2.5 CPU-seconds; the tasks' class loader is the same either way."""
    return {"pipeline.classpaths": find_jar().as_uri()}


def _local_options(config: Config, parallelism: int) -> dict[str, str]:
    options = {
        **jar_option(),
        "parallelism.default": str(parallelism),
        # Files reach the filesystem sink's final names only on checkpoints.
        "execution.checkpointing.interval": f"{config.get_int('job', 'checkpoint.interval.seconds')} s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "rest.bind-port": rest_port(),
        "process.working-dir": str(working_dir()),
        # Python UDF workers: run them with the interpreter running this job.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
    }
    checkpoint_dir = config.checkpoint_uri()
    if checkpoint_dir:
        options["execution.checkpointing.dir"] = checkpoint_dir
        options["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
    return options


def latest_checkpoint(config: Config) -> str | None:
    """The newest retained checkpoint under job.checkpoint.dir (local file:// dirs), if any."""
    root = config.checkpoint_uri()
    if not root or not root.startswith("file:"):
        return None
    candidates = [m.parent for m in Path(urlparse(root).path).glob("*/chk-*/_metadata")]
    if not candidates:
        return None
    newest = max(candidates, key=lambda chk: (chk.stat().st_mtime, int(chk.name.removeprefix("chk-"))))
    return newest.as_uri()


def forget_checkpoints(config: Config) -> None:
    """Delete the retained checkpoints under job.checkpoint.dir (local folders; other files stay)."""
    root = config.checkpoint_uri()
    if not root or not root.startswith("file:"):
        return
    for metadata in Path(urlparse(root).path).glob("*/chk-*/_metadata"):
        shutil.rmtree(metadata.parent.parent, ignore_errors=True)


def _local_table_env() -> TableEnvironment:
    """A streaming TableEnvironment for the local MiniCluster with the jar in its class loaders.

    TableEnvironment.create gives the job graph the JVM's own class loader, without the jar: with
    checkpointing on, the code Flink generates for a query that calls a Java function of the jar
    (sql/functions/) then fails to compile ("Cannot determine simple type name"). On a cluster
    (Managed Flink, `flink run --jarfile`) the jar is on the program's class loader already.
    """
    add_jars_to_context_class_loader([find_jar().as_uri()])
    jvm = get_gateway().jvm
    options = jvm.org.apache.flink.configuration.Configuration()
    options.setString("execution.target", "local")  # what LocalStreamEnvironment sets
    options.setString("execution.attached", "true")
    loader = jvm.Thread.currentThread().getContextClassLoader()
    j_env = jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment(options, loader)
    return StreamTableEnvironment.create(StreamExecutionEnvironment(j_env), EnvironmentSettings.in_streaming_mode())


def create(config: Config, *, managed: bool, streaming_source: bool, parallelism: int | None = None) -> TableEnvironment:
    """A streaming TableEnvironment configured for this job (one per process is plenty).

    A local checkpoint to resume from is set by the caller (``execution.savepoint.path``).
    """
    if not managed:
        _prepare_local_jvm()
        _use_emulator_settings(config)
        _use_secret_region(config)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode()) if managed else _local_table_env()
    options = _table_options(config, streaming_source)
    if not managed:
        _initialize_filesystems(config)
        options.update(_local_options(config, parallelism or config.get_int("job", "parallelism")))
        options.update(_restart_options(streaming_source))
    table_config = t_env.get_config()
    for key, value in options.items():
        table_config.set(key, value)
    log.info("table environment ready (%s)", "Managed Flink" if managed else "local MiniCluster")
    return t_env
