"""Build the application zip Managed Flink runs: ``target/<name>-<version>.zip``.

Layout (paths are what the ``kinesis.analytics.flink.run.options`` group points at):

  jobs/ udfs/ sql/                 the job; its code finds sql/ and lib/ next to jobs/
  lib/pyflink-dependencies.jar     `jarfile`: connectors, Parquet, JDBC driver (make jar)
  lib/python/                      `pyFiles`: put on the PYTHONPATH of the job's Python process
                                   and of every Python UDF worker by Flink
    boto3 botocore ...             the job reads the PostgreSQL password and lists the stream's
                                   shards with boto3, and Managed Flink installs nothing with pip
                                   (pure-Python wheels only)
    udfs/                          UDF functions are pickled by reference (module udfs.x), so a
                                   worker on a TaskManager must import them from here

Reproducible: entries sorted by name, one fixed timestamp, 0644 permissions, no __pycache__ or
installer files, and the jar stored as it is (already compressed): the same inputs give the
same bytes, hence the same content-addressed S3 key, hence no redeploy for an unchanged build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import logging
import os
import re
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from packaging.requirements import Requirement

from deploy.managed_flink import APP_NAME, JAR_FILE, PY_FILES, PYTHON_ENTRY, REPO_ROOT

log = logging.getLogger(__name__)

# Same instant as deploy/pom.xml's project.build.outputTimestamp (the jar's entries).
FIXED_TIME = (2026, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
UNIX = 3  # ZipInfo.create_system: the mode bits above are Unix ones

# Runtime Python dependencies of the job in the cloud (PyFlink itself comes with the runtime);
# their own requirements are added from the installed metadata.
BUNDLED_ROOTS = ("boto3",)
# botocore ships every AWS service model (~25 MB); the job calls only Secrets Manager (the
# password) and Kinesis (the start's shard check, jobs/streaming/kinesis_shards.py), and STS is what
# botocore uses for role-based credentials. The rest is left out.
BOTOCORE_SERVICES = ("kinesis", "secretsmanager", "sts")


class PackageError(RuntimeError):
    """The zip cannot be built; the message says what is missing."""


@dataclass(frozen=True)
class Source:
    """One zip entry: its name in the zip and where its bytes come from."""

    name: str
    path: Path


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int


def project_version(pom: Path = REPO_ROOT / "deploy" / "pom.xml") -> str:
    """The project's version: the one in deploy/pom.xml (the jar's, so one number for both)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(pom).getroot().find("m:version", namespace)
    if version is None or not (version.text or "").strip():
        raise PackageError(f"{pom}: no <version>")
    return version.text.strip()


def default_output(root: Path = REPO_ROOT) -> Path:
    return root / "target" / f"{APP_NAME}-{project_version(root / 'deploy' / 'pom.xml')}.zip"


def _tree(root: Path, folder: str, suffix: str, skip: Iterable[str] = ()) -> Iterator[Source]:
    base = root / folder
    if not base.is_dir():
        raise PackageError(f"{base}: missing")
    for path in sorted(base.rglob(f"*{suffix}")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and not any(relative.startswith(s) for s in skip):
            yield Source(relative, path)


def project_sources(root: Path, jar: Path) -> list[Source]:
    """The job's own files: Python code, SQL (not sql/examples: never loaded), the jar."""
    if not jar.is_file():
        raise PackageError(f"connector jar not found at {jar}; build it with `make jar`")
    sources = [*_tree(root, "jobs", ".py"), *_tree(root, "udfs", ".py"),
               *_tree(root, "sql", ".sql", skip=("sql/examples/",)), Source(JAR_FILE, jar)]
    # UDF workers import udfs.<module> from pyFiles (see the module docstring).
    sources += [Source(f"{PY_FILES}/{s.name}", s.path) for s in _tree(root, "udfs", ".py")]
    return sources


def requirement_closure(roots: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, with their own requirements (no extras)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise PackageError(f"Python package {name} is not installed (make setup installs requirements.txt)") from None
        found[key] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [found[key] for key in sorted(found)]


def _is_pure(distribution: metadata.Distribution) -> bool:
    wheel = distribution.read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel


def _wanted(distribution_name: str, name: PurePosixPath) -> bool:
    parts = name.parts
    if parts[0] == ".." or "__pycache__" in parts or name.suffix in (".pyc", ".pyo"):
        return False  # scripts outside site-packages, bytecode
    if parts[0].endswith(".dist-info"):
        # Keep what identifies the package and its license; not RECORD (lists what we prune),
        # INSTALLER/REQUESTED/direct_url.json (say how and where this machine installed it).
        return name.name == "METADATA" or "licen" in name.as_posix().lower() or name.name.startswith("NOTICE")
    if distribution_name == "botocore" and parts[:2] == ("botocore", "data") and len(parts) > 3:
        return parts[2] in BOTOCORE_SERVICES
    if distribution_name == "boto3" and parts[:2] == ("boto3", "data"):
        return False  # boto3.resource() models; the job uses clients only
    return True


def bundled_sources(roots: Iterable[str] = BUNDLED_ROOTS) -> list[Source]:
    sources = []
    for distribution in requirement_closure(roots):
        name = distribution.metadata["Name"]
        if not _is_pure(distribution):
            # A compiled wheel from this machine may not run on Managed Flink's platform.
            raise PackageError(f"{name} {distribution.version} is not a pure-Python package; it cannot be bundled")
        for file in distribution.files or ():
            relative = PurePosixPath(file.as_posix())
            if _wanted(name, relative):
                sources.append(Source(f"{PY_FILES}/{relative}", Path(str(distribution.locate_file(file)))))
    return sources


def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = UNIX
    info.external_attr = FILE_MODE << 16
    info.file_size = size
    # The jar (and any nested zip) is compressed already; deflating it again costs time for nothing.
    info.compress_type = zipfile.ZIP_STORED if name.endswith((".jar", ".zip")) else zipfile.ZIP_DEFLATED
    return info


def write_zip(sources: list[Source], out: Path) -> Artifact:
    """Write ``sources`` to ``out`` deterministically (atomically: a temp file, then rename)."""
    names = [source.name for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PackageError(f"two files for the same zip entry: {', '.join(duplicates)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False) as handle:
        temp = Path(handle.name)
    try:
        with zipfile.ZipFile(temp, "w", compresslevel=9) as archive:
            for source in sorted(sources, key=lambda s: s.name):
                info = _zip_info(source.name, source.path.stat().st_size)
                with source.path.open("rb") as data, archive.open(info, "w") as entry:
                    while chunk := data.read(1 << 20):
                        entry.write(chunk)
        temp.chmod(0o644)  # NamedTemporaryFile makes 0600; the zip is no secret
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return artifact_of(out)


def artifact_of(path: Path) -> Artifact:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return Artifact(path, digest.hexdigest(), path.stat().st_size)


def check_layout(path: Path) -> list[str]:
    """What the run options need but the zip lacks (empty = the zip is runnable)."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    problems = [f"{path.name} has no {entry} (run option)" for entry in (PYTHON_ENTRY, JAR_FILE) if entry not in names]
    if not any(name.startswith(f"{PY_FILES}/") for name in names):
        problems.append(f"{path.name} has no {PY_FILES}/ (run option pyFiles)")
    if not any(name.startswith("sql/features/") for name in names):
        problems.append(f"{path.name} has no sql/features/*.sql")
    return problems


def build(root: Path = REPO_ROOT, out: Path | None = None, jar: Path | None = None) -> Artifact:
    """The application zip from the working tree at ``root`` (jar: target/ unless given)."""
    out = out or default_output(root)
    jar = jar or root / "target" / "pyflink-dependencies.jar"
    artifact = write_zip(project_sources(root, jar) + bundled_sources(), out)
    problems = check_layout(artifact.path)
    if problems:
        raise PackageError("; ".join(problems))
    log.info("built %s (%.1f MB, sha256 %s)", artifact.path, artifact.size / 1e6, artifact.sha256)
    return artifact
