"""A real PostgreSQL server on loopback TCP (the job's JDBC sink needs TCP), data under ``.local/``.

Binaries: Debian's ``postgresql`` package (deploy/local/install.sh installs it), found under
/usr/lib/postgresql/<version>/bin, or PG_BIN. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user the package creates; as anyone else it runs as that user.

Auth: the superuser exists only behind the unix socket in ``.local/postgres/run`` (trust, mode 0700);
TCP on 127.0.0.1 needs the config's user and password (scram-sha-256), as RDS would.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import psycopg
from psycopg import sql

from deploy.local import process
from deploy.local.config import PostgresSettings
from deploy.local.state import StateDirs

log = logging.getLogger(__name__)

SERVICE_USER = "postgres"  # created by Debian's postgresql package
SUPERUSER = "postgres"
START_TIMEOUT_S = 60


class PostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class PostgresStatus:
    kind: str  # "ours", "external" or "down"
    address: str
    pid: int | None = None
    data_dir: Path | None = None

    def describe(self) -> str:
        if self.kind == "ours":
            return f"{self.address} (pid {self.pid}, data {self.data_dir})"
        return f"{self.address} ({self.kind})"


def find_bin_dir() -> Path:
    """The newest PostgreSQL server binaries on this machine (PG_BIN overrides)."""
    override = os.environ.get("PG_BIN")
    candidates = [Path(override)] if override else []

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    for candidate in candidates:
        if (candidate / "pg_ctl").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise PostgresError("PostgreSQL server binaries not found (pg_ctl, initdb); "
                        "run `bash deploy/local/install.sh` or set PG_BIN")


class Server:
    """One PostgreSQL cluster kept in ``<state>/postgres``."""

    def __init__(self, state: StateDirs, settings: PostgresSettings) -> None:
        self.state = state
        self.settings = settings
        self.pid_file = state.run / "postgres.pid"

    # --- layout -------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.state.postgres.resolve()

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        # Next to the data: the server writes it as the service user, who may not reach .local/logs.
        return self.home / "postgres.log"

    # --- running commands as the right user -------------------------------------------------------
    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._as_root():
            try:
                account = pwd.getpwnam(SERVICE_USER)
            except KeyError as exc:
                raise PostgresError(f"running as root needs the '{SERVICE_USER}' user; "
                                    "run `bash deploy/local/install.sh`") from exc
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
                      "env": {**os.environ, "HOME": account.pw_dir, "USER": SERVICE_USER}}
        log.debug("running %s", shlex.join(args))
        result = subprocess.run(list(args), capture_output=True, text=True, cwd=self.home, **kwargs)
        if check and result.returncode != 0:
            raise PostgresError(f"{Path(args[0]).name} failed ({result.returncode}): "
                                f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def _service_user_reaches(self, folder: Path) -> bool:
        if not self._as_root():
            return True
        probe = subprocess.run(["test", "-x", str(folder)], user=pwd.getpwnam(SERVICE_USER).pw_uid)
        return probe.returncode == 0

    def _prepare_home(self) -> None:
        """Create ``.local/postgres`` so the service user can own it.

        If the repo sits where that user cannot go (a clone under /root, mode 0700), the data goes
        to a private folder in the temp dir and ``.local/postgres`` becomes a symlink to it.
        """
        self.state.root.mkdir(parents=True, exist_ok=True)
        link = self.state.postgres
        if not link.exists():
            if link.is_symlink():
                link.unlink()  # dangling: the temp folder was cleaned since
            if self._service_user_reaches(self.state.root):
                link.mkdir()
            else:
                digest = hashlib.sha1(str(self.state.root).encode()).hexdigest()[:10]
                target = Path(tempfile.gettempdir()) / f"deploy-local-postgres-{digest}"
                target.mkdir(mode=0o700, exist_ok=True)
                link.symlink_to(target, target_is_directory=True)
                log.info("service user cannot reach %s; PostgreSQL data kept in %s", self.state.root, target)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_root():
            account = pwd.getpwnam(SERVICE_USER)
            for folder in (self.home, self.socket_dir):
                os.chown(folder, account.pw_uid, account.pw_gid)
            os.chmod(self.home, 0o700)

    # --- lifecycle ----------------------------------------------------------------------------
    def our_pid(self) -> int | None:
        return process.recorded_pid(self.pid_file, str(self.data_dir))

    def _listening_port(self) -> int | None:
        """The port our running server listens on (line 4 of postmaster.pid)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def status(self) -> PostgresStatus:
        address = f"{self.settings.host}:{self.settings.port}"
        pid = self.our_pid()
        # Ours only on the config's port: a config naming another port means another server.
        if pid is not None and self._listening_port() in (None, self.settings.port):
            return PostgresStatus("ours", address, pid, self.data_dir)
        if process.port_open(self.settings.host, self.settings.port):
            return PostgresStatus("external", address)
        return PostgresStatus("down", address)

    def _initdb(self, bin_dir: Path) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        log.info("initializing a PostgreSQL cluster in %s", self.data_dir)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"])
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# deploy/local: a disposable dev database; commits need not wait for the disk.\n"
                       "synchronous_commit = off\n"
                       "timezone = 'UTC'\n"
                       "log_timezone = 'UTC'\n")

    def start(self) -> PostgresStatus:
        """Start the server unless it (or a usable external one) is already up."""
        current = self.status()
        if current.kind == "ours":
            self.ensure_database()  # this config may name a database the running server lacks
            return current
        if current.kind == "external":
            if self._can_login():
                log.info("reusing the PostgreSQL server already on %s", current.address)
                return current
            raise PostgresError(
                f"{current.address} is taken by a server that rejects {self.settings.user}@"
                f"{self.settings.database}; stop it or change rds.jdbc.url in the config")
        if self.our_pid() is not None:
            raise PostgresError(
                f"the PostgreSQL server `up` started listens on port {self._listening_port()}, the config "
                f"says {self.settings.port}: `python -m deploy.local down`, then `up` again")
        bin_dir = find_bin_dir()
        self._prepare_home()
        self._initdb(bin_dir)
        # Listen options on the command line, not in postgresql.conf: a changed port or host in the
        # config takes effect on the next start without re-initializing the data.
        options = " ".join([
            f"-p {self.settings.port}",
            f"-c listen_addresses={shlex.quote(self.settings.host)}",
            f"-c unix_socket_directories={shlex.quote(str(self.socket_dir))}",
            "-c unix_socket_permissions=0700",
        ])
        self._run([str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                   "-w", "-t", str(START_TIMEOUT_S), "-o", options])
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{pid}\n")
        log.info("PostgreSQL started on %s:%d (pid %d)", self.settings.host, self.settings.port, pid)
        self.ensure_database()
        return PostgresStatus("ours", f"{self.settings.host}:{self.settings.port}", pid, self.data_dir)

    def stop(self) -> int | None:
        """Stop the server only if ``up`` started it."""
        pid = self.our_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        try:
            self._run([str(find_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
        except PostgresError as exc:
            log.warning("pg_ctl stop failed (%s); signalling pid %d", exc, pid)
            process.stop(pid, timeout=30)
        self.pid_file.unlink(missing_ok=True)
        log.info("PostgreSQL stopped (pid %d)", pid)
        return pid

    # --- database and user ------------------------------------------------------------------
    def _superuser_connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(host=str(self.socket_dir), port=self.settings.port, user=SUPERUSER,
                               dbname=dbname, autocommit=True, connect_timeout=5)

    def ensure_database(self) -> None:
        """Create (or re-password) the config's user and its database, as RDS would have them."""
        user, database = self.settings.user, self.settings.database
        with self._superuser_connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(self.settings.password)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(user)))
                log.info("created database %s owned by %s", database, user)

    def _can_login(self) -> bool:
        try:
            with psycopg.connect(**self.settings.conninfo()) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.debug("login to %s:%d failed: %s", self.settings.host, self.settings.port, exc)
            return False
        return True


def truncate_public_tables(settings: PostgresSettings) -> list[str]:
    """Empty every table in the ``public`` schema (over TCP, as the job's user)."""
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        if tables:
            conn.execute(sql.SQL("TRUNCATE TABLE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier("public", t) for t in tables)))
    return tables
