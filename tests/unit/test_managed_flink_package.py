"""The zip writer on a small tree: same inputs give the same bytes whatever the files' times and
modes; bytecode and sql/examples stay out; pure-Python dependencies only. The real zip is checked
in tests/integration/test_package_managed_flink.py."""

import os
import zipfile
from pathlib import Path

import pytest

from deploy.managed_flink import package
from deploy.managed_flink.package import PackageError

FILES = {
    "jobs/__init__.py": "", "jobs/managed_flink_main.py": "print('job')\n", "udfs/__init__.py": "",
    "udfs/f.py": "F = 1\n", "sql/features/a.sql": "SELECT 1\n", "sql/examples/e.sql": "SELECT 2\n",
    "jobs/__pycache__/x.cpython-311.pyc": "bytecode", "target/pyflink-dependencies.jar": "PK-jar",
}


def make_tree(root: Path, mtime: int, mode: int) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return root


def build(root: Path, out: Path) -> package.Artifact:
    sources = package.project_sources(root, root / "target" / "pyflink-dependencies.jar")
    return package.write_zip(sources + package.bundled_sources(["six"]), out)


def test_same_inputs_same_bytes(tmp_path):
    first = build(make_tree(tmp_path / "a", mtime=1_700_000_000, mode=0o644), tmp_path / "one.zip")
    second = build(make_tree(tmp_path / "b", mtime=1_800_000_000, mode=0o755), tmp_path / "two.zip")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()


def test_entries_sorted_fixed_time_and_mode(tmp_path):
    artifact = build(make_tree(tmp_path / "a", mtime=1_700_000_000, mode=0o755), tmp_path / "one.zip")
    with zipfile.ZipFile(artifact.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {package.FIXED_TIME}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert "lib/pyflink-dependencies.jar" in names and "lib/python/udfs/f.py" in names
    assert "lib/python/six.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("sql/examples/")]
    assert not [n for n in names if n.endswith(("RECORD", "INSTALLER", "direct_url.json"))]
    jar = next(info for info in infos if info.filename.endswith(".jar"))
    assert jar.compress_type == zipfile.ZIP_STORED


def test_missing_jar_says_make_jar(tmp_path):
    root = make_tree(tmp_path / "a", mtime=0, mode=0o644)
    (root / "target" / "pyflink-dependencies.jar").unlink()
    with pytest.raises(PackageError, match="build it with `make jar`"):
        package.project_sources(root, root / "target" / "pyflink-dependencies.jar")


def test_compiled_packages_are_refused():
    with pytest.raises(PackageError, match="is not a pure-Python package"):
        package.bundled_sources(["pyarrow"])


def test_dependencies_of_boto3_are_bundled():
    names = {source.name.split("/")[2] for source in package.bundled_sources()}
    assert {"boto3", "botocore", "jmespath", "s3transfer", "dateutil", "six.py", "urllib3"} <= names


def test_version_comes_from_the_pom():
    assert package.project_version() == "1.0.0"
    assert package.default_output().name == "feature-pipeline-1.0.0.zip"
