"""jobs/streaming/kinesis_shards.py's shard -> subtask mapping equals the shaded connector's own
UniformShardAssigner (called in the JVM, through the jar the job runs with), and the Kinesis source
is configured to use that assigner."""

from __future__ import annotations

import random

from pyflink.java_gateway import get_gateway

from jobs.definitions import config as job_config
from jobs.streaming import environment, kinesis_shards
from jobs.streaming.kinesis_shards import Shard
from tests.sql.test_backfill_oracle import CONFIG, ROOT


def _connector_subtask(jvm, stream: str, shard: Shard, parallelism: int) -> int:
    model = jvm.org.apache.flink.kinesis.shaded.com.amazonaws.services.kinesis.model
    hash_range = model.HashKeyRange().withStartingHashKey(str(shard.starting_hash_key)).withEndingHashKey(
        str(shard.ending_hash_key))
    handle = jvm.org.apache.flink.streaming.connectors.kinesis.model.StreamShardHandle(
        stream, model.Shard().withShardId(shard.shard_id).withHashKeyRange(hash_range))
    assigned = jvm.org.apache.flink.streaming.connectors.kinesis.util.UniformShardAssigner().assign(handle, parallelism)
    # What KinesisDataFetcher.isThisSubtaskShouldSubscribeTo compares with the subtask's index.
    return abs(_java_remainder(assigned, parallelism))


def _java_remainder(value: int, divisor: int) -> int:
    """Java's int %: the sign of the dividend."""
    remainder = abs(value) % divisor
    return -remainder if value < 0 else remainder


def test_the_mapping_equals_the_connectors_uniform_assigner():
    environment.create(job_config.load(CONFIG, "run"), managed=False, streaming_source=True)  # the jar, in the JVM
    jvm = get_gateway().jvm
    rng = random.Random(7)
    names = ["user-events", "shards-backlog-p4", "a", "x" * 128] + [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.") for _ in range(rng.randrange(1, 40)))
        for _ in range(30)]
    for name in names:
        for _ in range(10):
            start = rng.randrange(2**128)
            shard = Shard("shardId-000000000001", start, rng.randrange(start, 2**128), True)
            parallelism = rng.randrange(1, 64)
            assert kinesis_shards.subtask_of(shard, name, parallelism) == _connector_subtask(jvm, name, shard, parallelism), (
                name, shard, parallelism)


def test_the_kinesis_source_uses_the_uniform_assigner():
    source = (ROOT / "sql" / "sources" / "kinesis" / "events_raw.sql").read_text()
    assert "'scan.shard-assigner' = 'uniform'" in source
