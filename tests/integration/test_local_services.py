"""The local services for real: emulator (or a reused LocalStack), PostgreSQL over TCP, stream, bucket.

Uses its own stream, bucket and database (on the same servers as the demo), so running the tests
never wipes a demo's data. Services already running are reused; the ones this module started are
stopped at the end.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

import psycopg

from deploy.local import aws, config, emulator, producer, services
from deploy.local.generator import MALFORMED_KINDS, GeneratorOptions, generate
from deploy.local.state import DEFAULT_STATE

TEST_STREAM = "test-local-services"
TEST_BUCKET = "test-local-services"
TEST_DATABASE = "features_test_local"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _test_config(tmp: Path) -> Path:
    """The demo config with the stream, bucket, database and checkpoint folder renamed, and 2 shards."""
    groups = json.loads(config.DEFAULT_CONFIG.read_text())
    for group in groups:
        props = group["PropertyMap"]
        if group["PropertyGroupId"] == "job":
            props["checkpoint.dir"] = (tmp / "checkpoints").as_uri()
        elif group["PropertyGroupId"] == "source":
            props["stream.arn"] = f"arn:aws:kinesis:us-east-1:000000000000:stream/{TEST_STREAM}"
            props["shard.count"] = "2"
        elif group["PropertyGroupId"] == "output":
            props["path"] = f"s3://{TEST_BUCKET}/features"
        elif group["PropertyGroupId"] == "rds":
            props["jdbc.url"] = props["jdbc.url"].rsplit("/", 1)[0] + f"/{TEST_DATABASE}"
    path = tmp / "local-test.json"
    path.write_text(json.dumps(groups))
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[config.LocalSettings]:
    loaded = config.load(_test_config(tmp_path_factory.mktemp("config")))
    services.up(loaded, DEFAULT_STATE)  # conftest.py stops the services afterwards if they were down
    services.reset(loaded)  # a clean stream (with the configured 2 shards), bucket and database
    yield loaded


def _read_stream(kinesis: Any, stream: str, expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every record of every shard from TRIM_HORIZON, polling until ``expected`` arrived."""
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    iterators = {s: kinesis.get_shard_iterator(StreamName=stream, ShardId=s, ShardIteratorType="TRIM_HORIZON")
                 ["ShardIterator"] for s in shards}
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        for shard, iterator in list(iterators.items()):
            response = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            iterators[shard] = response["NextShardIterator"]
            records += [{**r, "ShardId": shard} for r in response["Records"]]
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


# --- services -----------------------------------------------------------------------------------

def test_up_is_idempotent_and_reports_every_endpoint(settings: config.LocalSettings) -> None:
    first = services.up(settings, DEFAULT_STATE)
    second = services.up(settings, DEFAULT_STATE)
    assert [e.pid for e in first.endpoints] == [e.pid for e in second.endpoints]
    assert first.postgres.pid == second.postgres.pid
    assert second.stream == "2 shard(s)" and second.bucket == "exists"
    text = "\n".join(second.lines(settings, DEFAULT_STATE))
    assert "http://127.0.0.1:4566" in text and f"127.0.0.1:{settings.postgres.port}" in text


def test_produced_file_reads_back_with_get_records(settings: config.LocalSettings, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    generate(GeneratorOptions(users=5, events=60, duplicates=0.1, malformed=0.1, seed=7, start=START), events)
    lines = events.read_text().splitlines()
    kinesis = aws.kinesis(settings)
    before = time.time()

    stats = producer.produce(kinesis, settings.stream_name, events)
    assert stats.sent == len(lines) and stats.skipped == 0

    records = _read_stream(kinesis, settings.stream_name, len(lines))
    assert Counter(r["Data"].decode() for r in records) == Counter(lines)  # malformed lines too, as-is
    assert {r["ShardId"] for r in records} == {"shardId-000000000000", "shardId-000000000001"}
    # One user's events share a partition key, hence a shard (and their order within it).
    shards_per_user: dict[str, set[str]] = {}
    for r in records:
        try:
            user = json.loads(r["Data"]).get("user_id")
        except ValueError:
            continue
        if user:
            shards_per_user.setdefault(user, set()).add(r["ShardId"])
    assert shards_per_user and all(len(s) == 1 for s in shards_per_user.values())
    # The job's `timestamp` metadata column is this arrival time: it must be set, and recent.
    arrivals = [r["ApproximateArrivalTimestamp"].timestamp() for r in records]
    assert min(arrivals) >= before - 5 and max(arrivals) <= time.time() + 5


def test_postgres_answers_on_tcp_as_the_config_user(settings: config.LocalSettings) -> None:
    with psycopg.connect(**settings.postgres.conninfo()) as conn:
        user, database = conn.execute("SELECT current_user, current_database()").fetchone()  # type: ignore[misc]
        assert (user, database) == (settings.postgres.user, TEST_DATABASE)
        conn.execute("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY)")  # the user owns `public`


def test_reset_empties_stream_bucket_and_tables(settings: config.LocalSettings) -> None:
    kinesis, s3 = aws.kinesis(settings), aws.s3(settings)
    kinesis.put_record(StreamName=settings.stream_name, Data=b'{"txid": "x"}', PartitionKey="x")
    s3.put_object(Bucket=settings.bucket, Key="features/dt=20260101/hr=00/part-0.parquet", Body=b"x")
    with psycopg.connect(**settings.postgres.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS reset_probe (id serial PRIMARY KEY, v text)")
        conn.execute("INSERT INTO reset_probe (v) VALUES ('a'), ('b')")

    assert settings.checkpoint_dir is not None
    (settings.checkpoint_dir / "job" / "chk-1").mkdir(parents=True, exist_ok=True)

    result = services.reset(settings)

    assert "reset_probe" in result.tables_truncated and result.objects_deleted >= 1
    assert not settings.checkpoint_dir.exists()  # they point into the deleted stream
    assert _read_stream(kinesis, settings.stream_name, expected=1, timeout=1.0) == []
    assert s3.list_objects_v2(Bucket=settings.bucket).get("KeyCount", 0) == 0
    with psycopg.connect(**settings.postgres.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM reset_probe").fetchone() == (0,)
        # RESTART IDENTITY: ids start over, so a re-run produces the same rows.
        assert conn.execute("INSERT INTO reset_probe (v) VALUES ('c') RETURNING id").fetchone() == (1,)


def test_up_forgets_checkpoints_of_a_stream_it_had_to_create(settings: config.LocalSettings) -> None:
    assert settings.checkpoint_dir is not None
    (settings.checkpoint_dir / "job" / "chk-1").mkdir(parents=True, exist_ok=True)
    services.up(settings, DEFAULT_STATE)  # stream exists: checkpoints stay
    assert settings.checkpoint_dir.exists()
    aws.kinesis(settings).delete_stream(StreamName=settings.stream_name)  # as after `down` of the emulator
    aws.kinesis(settings).get_waiter("stream_not_exists").wait(StreamName=settings.stream_name)
    services.up(settings, DEFAULT_STATE)
    assert not settings.checkpoint_dir.exists()


def test_emulator_speaks_s3_wire_format_to_hadoop(settings: config.LocalSettings) -> None:
    """Hadoop's S3A (AWS SDK v1) needs S3's XML root names, or Flink's Parquet commits fail."""
    if not any(e.kind == "emulator" for e in services.status(settings, DEFAULT_STATE).endpoints):
        pytest.skip("a reused endpoint, not our emulator")
    s3 = aws.s3(settings)
    bodies: dict[str, bytes] = {}
    s3.meta.events.register("after-call.s3.CompleteMultipartUpload",
                            lambda http_response, **_: bodies.update(complete=http_response.content))
    upload = s3.create_multipart_upload(Bucket=settings.bucket, Key="mpu/probe")
    part = s3.upload_part(Bucket=settings.bucket, Key="mpu/probe", PartNumber=1, UploadId=upload["UploadId"], Body=b"x")
    s3.complete_multipart_upload(Bucket=settings.bucket, Key="mpu/probe", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    assert b"<CompleteMultipartUploadResult" in bodies["complete"]


def test_at_timestamp_in_epoch_millis_starts_at_that_time(settings: config.LocalSettings) -> None:
    """The connector's SDK v1 (CBOR off) sends GetShardIterator's Timestamp in epoch millis."""
    if not any(e.kind == "emulator" for e in services.status(settings, DEFAULT_STATE).endpoints):
        pytest.skip("a reused endpoint, not our emulator")
    kinesis = aws.kinesis(settings)
    shard = kinesis.put_record(StreamName=settings.stream_name, Data=b"before", PartitionKey="at-ts")["ShardId"]
    time.sleep(0.3)
    at_ms = int(time.time() * 1000)
    time.sleep(0.3)
    kinesis.put_record(StreamName=settings.stream_name, Data=b"after", PartitionKey="at-ts")
    # The request exactly as the SDK v1 JSON protocol sends it (boto3 would send seconds).
    body = json.dumps({"StreamName": settings.stream_name, "ShardId": shard,
                       "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": at_ms}).encode()
    request = urllib.request.Request(str(settings.kinesis_endpoint), data=body, method="POST", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.GetShardIterator",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=5) as response:
        iterator = json.loads(response.read())["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b"after"]


# --- pure parts (no services) -------------------------------------------------------------------

def test_generator_is_deterministic_and_carries_every_kind_of_mess(tmp_path: Path) -> None:
    options = GeneratorOptions(users=10, events=400, duplicates=0.1, out_of_order_seconds=20, malformed=0.02,
                               seed=3, start=START)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    summary = generate(options, first)
    generate(options, second)
    assert first.read_bytes() == second.read_bytes()

    lines = first.read_text().splitlines()
    assert summary.lines == len(lines) == 400 + 40 + 8
    assert set(summary.malformed) == set(MALFORMED_KINDS)
    assert sum(n - 1 for n in Counter(lines).values()) == 40  # identical re-sends

    parsed = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and str(event.get("txid", "")).startswith("t-") \
                and not event["txid"].startswith("t-bad-"):
            parsed.append(event)
    formats = Counter(type(e["event_time"]).__name__ + ("ms" if "." in str(e["event_time"]) else "")
                      for e in parsed)
    assert {"int", "strms", "str"} <= set(formats)
    assert any("amount" not in e for e in parsed) and any(e.get("amount") is None and "amount" in e for e in parsed)

    def epoch_ms(value: Any) -> int:
        if isinstance(value, int):
            return value
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)

    # Out of order, but never by more than the bound (+1 s: ISO without millis truncates).
    # First occurrences only: a re-send may trail its original by up to 30 s more, on purpose.
    newest, seen = 0, set()
    for event in parsed:
        if event["txid"] in seen:
            continue
        seen.add(event["txid"])
        t = epoch_ms(event["event_time"])
        assert t >= newest - 21_000, event
        newest = max(newest, t)
    assert min(epoch_ms(e["event_time"]) for e in parsed) >= epoch_ms("2026-01-01T00:00:00Z")

def test_partition_key_is_the_user_or_a_line_hash() -> None:
    assert producer.partition_key('{"user_id": "u-42", "txid": "t-1"}') == "u-42"
    assert producer.partition_key('{"user_id": 7}') == "7"
    for bad in ('{"user_id": ""}', "not json", "[1, 2]", '{"txid": "t-1"}'):
        key = producer.partition_key(bad)
        assert len(key) == 40 and key == producer.partition_key(bad)


def test_emulator_root_fix_maps_only_known_roots() -> None:
    assert emulator.S3_XML_ROOTS["CompleteMultipartUploadResponse"] == "CompleteMultipartUploadResult"
    assert all(k.endswith("Response") and v.endswith("Result") for k, v in emulator.S3_XML_ROOTS.items())


def test_put_batch_resends_only_failed_records_and_survives_throttling(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    monkeypatch.setattr(producer, "_backoff", lambda attempt: None)
    calls: list[list[bytes]] = []

    class FlakyKinesis:
        def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
            calls.append([r["Data"] for r in Records])
            if len(calls) == 1:
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutRecords")
            if len(calls) == 2:  # the second record fails once
                return {"FailedRecordCount": 1, "Records": [
                    {"ShardId": "s"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "busy"}, {"ShardId": "s"}]}
            return {"FailedRecordCount": 0, "Records": [{"ShardId": "s"} for _ in Records]}

    batch = [{"Data": d, "PartitionKey": "k"} for d in (b"a", b"b", b"c")]
    assert producer.put_batch(FlakyKinesis(), "s", batch) == 4
    assert calls == [[b"a", b"b", b"c"], [b"a", b"b", b"c"], [b"b"]]
