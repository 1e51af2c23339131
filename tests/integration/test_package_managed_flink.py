"""The real application zip: layout for the run options, reproducible bytes, no secrets or machine
paths, and, unpacked into a temp dir, a job that validates using only the zip's code, SQL and jar
plus the installed PyFlink (what the Managed Flink runtime provides), and whose bundled boto3 reads
the database password and the stream's shards with no site-packages at all.

Needs target/pyflink-dependencies.jar (`make jar`, part of `make test`). No local services.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from deploy.managed_flink import JAR_FILE, PY_FILES, PYTHON_ENTRY, package, settings
from tests.integration.stack import clean_env

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "config" / "local.json"
EXAMPLE = ROOT / "deploy" / "config" / "aws.example.json"
JAR = ROOT / "target" / "pyflink-dependencies.jar"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not JAR.is_file():
        pytest.fail("target/pyflink-dependencies.jar is missing: run `make jar` (make test does)")
    return package.build(out=tmp_path_factory.mktemp("zip") / "feature-pipeline-1.0.0.zip")


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory):
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(target)
    return target


def test_layout_matches_the_run_options(built):
    assert package.check_layout(built.path) == []
    run_options = settings.load(EXAMPLE).runtime_properties[-1]["PropertyMap"]
    with zipfile.ZipFile(built.path) as archive:
        names = archive.namelist()
    assert run_options["python"] == PYTHON_ENTRY in names
    assert run_options["jarfile"] == JAR_FILE in names
    assert any(name.startswith(run_options["pyFiles"] + "/boto3/") for name in names)
    assert {name.split("/")[0] for name in names} == {"jobs", "udfs", "sql", "lib"}
    assert f"{PY_FILES}/udfs/spend_bucket.py" in names  # for Python UDF workers on the TaskManagers
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("sql/examples/")]


def test_same_tree_same_bytes(built, tmp_path):
    again = package.build(out=tmp_path / "again.zip")
    assert again.sha256 == built.sha256 and again.size == built.size


def configured_passwords() -> set[str]:
    found = set()
    for config in (ROOT / "deploy" / "config").glob("*.json"):
        for group in json.loads(config.read_text()):
            for key, value in group["PropertyMap"].items():
                if "password" in key and value and not value.startswith("arn:"):
                    found.add(value)
    return found


def test_no_configured_password_or_machine_path_in_the_zip(built):
    passwords = configured_passwords()
    assert passwords  # local.json has one: the check must look for something
    machine_paths = {str(ROOT), str(Path.home()), sys.prefix}
    with zipfile.ZipFile(built.path) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            for password in passwords:
                assert password.encode() not in data, f"{info.filename} contains a configured password"
            if not info.filename.endswith(".jar"):
                text = data.decode("utf-8", "replace")
                for path in machine_paths:
                    assert path not in text, f"{info.filename} contains the machine path {path}"


def test_unpacked_zip_validates_with_only_its_own_code_sql_and_jar(unpacked):
    script = ("import sys\n"
              "from jobs import feature_job\nfrom jobs.streaming import environment\n"
              "print('JAR', environment.find_jar())\n"
              f"sys.exit(feature_job.main(['validate', '--config', {str(LOCAL)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=unpacked, env=clean_env(drop_aws=True), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"JAR {unpacked / 'lib' / 'pyflink-dependencies.jar'}" in result.stdout
    assert "OK: 2 feature group(s) (user_activity_1h, user_activity_5m), 12 derived sink(s)" in result.stdout


@pytest.fixture
def secrets_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_bundled_boto3_reads_the_password_without_site_packages(unpacked, secrets_endpoint, tmp_path):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=secrets_endpoint, **credentials)
    arn = client.create_secret(Name="feature-pipeline/postgres",
                               SecretString=json.dumps({"username": "features", "password": "from-the-secret"}))["ARN"]
    groups = json.loads(LOCAL.read_text())
    rds = next(g for g in groups if g["PropertyGroupId"] == "rds")["PropertyMap"]
    rds.update({"password": "", "password.secret.arn": arn})
    config = tmp_path / "cloud.json"
    config.write_text(json.dumps(groups))
    # -S: no site-packages, so boto3 and its dependencies can only come from the zip's pyFiles folder.
    script = ("import sys\n"
              f"sys.path[:0] = [{str(unpacked)!r}, {str(unpacked / PY_FILES)!r}]\n"
              "import boto3\n"
              "from jobs.definitions import config\nfrom jobs.postgres import credentials\n"
              "print(boto3.__file__)\n"
              f"print(credentials.jdbc_password(config.load(__import__('pathlib').Path({str(config)!r}), 'run')))\n")
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=clean_env(drop_aws=True, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                                                       AWS_ENDPOINT_URL_SECRETS_MANAGER=secrets_endpoint,
                                                       AWS_EC2_METADATA_DISABLED="true"))
    assert result.returncode == 0, result.stderr[-3000:]
    boto3_file, password = result.stdout.split()
    assert Path(boto3_file).is_relative_to(unpacked / PY_FILES)
    assert password == "from-the-secret"


def test_bundled_boto3_runs_the_shard_check_without_site_packages(unpacked, secrets_endpoint, tmp_path):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("kinesis", region_name="us-east-1", endpoint_url=secrets_endpoint, **credentials).create_stream(
        StreamName="user-events", ShardCount=2)
    groups = json.loads(LOCAL.read_text())
    next(g for g in groups if g["PropertyGroupId"] == "source")["PropertyMap"]["aws.endpoint"] = secrets_endpoint
    config = tmp_path / "cloud.json"
    config.write_text(json.dumps(groups))
    script = ("import sys\n"
              f"sys.path[:0] = [{str(unpacked)!r}, {str(unpacked / PY_FILES)!r}]\n"
              "from jobs.definitions import config\nfrom jobs.streaming import kinesis_shards\n"
              f"kinesis_shards.check_stream(config.load(__import__('pathlib').Path({str(config)!r}), 'run'))\n")
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=clean_env(drop_aws=True, AWS_EC2_METADATA_DISABLED="true"))
    assert result.returncode != 0  # parallelism 1 for 2 open shards: refused, after listing them
    assert result.stderr.strip().splitlines()[-1].startswith(
        "jobs.definitions.config.ConfigError: job.parallelism 1 puts shardId-000000000000 and shardId-000000000001 of stream user-events")
