"""The start check: each open shard needs a source subtask of its own (jobs/streaming/kinesis_shards.py).
The assignment itself is checked against the connector's class in tests/sql/test_shard_assignment.py."""

from __future__ import annotations

import logging

import boto3
import pytest
from moto import mock_aws

from jobs.definitions.config import ConfigError, validate
from jobs.streaming import kinesis_shards
from jobs.streaming.kinesis_shards import Shard
from tests.unit.test_config import groups

STREAM = "user-events"
QUARTER = 2**126


def even(count: int, first_id: int = 0) -> list[Shard]:
    step = 2**128 // count
    return [Shard(f"shardId-{first_id + i:012d}", i * step, (i + 1) * step - 1 if i < count - 1 else 2**128 - 1, True)
            for i in range(count)]


def split(shard: Shard, first_child: int) -> list[Shard]:
    """The closed parent and its two halves."""
    middle = (shard.starting_hash_key + shard.ending_hash_key) // 2
    return [Shard(shard.shard_id, shard.starting_hash_key, shard.ending_hash_key, False),
            Shard(f"shardId-{first_child:012d}", shard.starting_hash_key, middle, True),
            Shard(f"shardId-{first_child + 1:012d}", middle + 1, shard.ending_hash_key, True)]


def test_java_string_hash():
    assert kinesis_shards.java_string_hash("") == 0
    assert kinesis_shards.java_string_hash("hello") == 99162322
    assert kinesis_shards.java_string_hash("shardId-000000000000") == -1763766348  # overflows int


@pytest.mark.parametrize("count", [1, 2, 4, 12])
@pytest.mark.parametrize("extra", [0, 1, 4])
def test_even_shards_get_a_subtask_each_at_parallelism_at_least_the_shard_count(count, extra):
    shards = even(count)
    assert sorted(kinesis_shards.subtask_of(s, STREAM, count + extra) for s in shards) == sorted(
        set(kinesis_shards.subtask_of(s, STREAM, count + extra) for s in shards))
    kinesis_shards.check(shards, STREAM, count + extra, allow_shared=False)


def test_fewer_subtasks_than_shards_is_refused_naming_parallelism_and_shard_count():
    with pytest.raises(ConfigError) as error:
        kinesis_shards.check(even(4), STREAM, 2, allow_shared=False)
    message = str(error.value)
    assert message.startswith("job.parallelism 2 puts shardId-")
    assert f"of stream {STREAM} (4 open shards) on one source subtask" in message
    assert "set job.parallelism to 4 or source.allow.shared.subtasks to true" in message
    assert "\n" not in message


def test_a_split_puts_both_children_on_the_parents_subtask_and_the_fix_names_a_parallelism():
    shards = even(4)
    after = split(shards[0], 4) + shards[1:]
    children = {"shardId-000000000004", "shardId-000000000005"}
    assert len({kinesis_shards.subtask_of(s, STREAM, 4) for s in after if s.shard_id in children}) == 1
    with pytest.raises(ConfigError, match="puts shardId-000000000004 and shardId-000000000005 .* "
                                          r"\(5 open shards\) .* set job.parallelism to 6 "):
        kinesis_shards.check(after, STREAM, 4, allow_shared=False)
    kinesis_shards.check(after, STREAM, 6, allow_shared=False)


def test_allowed_sharing_only_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="jobs.streaming.kinesis_shards"):
        kinesis_shards.check(even(4), STREAM, 2, allow_shared=True)
    assert "allowed by source.allow.shared.subtasks" in caplog.text


def test_a_closed_shard_beside_a_child_only_warns(caplog):
    """Scaled 2 -> 4 evenly: the 4 children each have a subtask; each closed parent shares one
    with a child, which only matters to a fresh start reading from the stream's start."""
    parents = even(2)
    shards = split(parents[0], 2) + split(parents[1], 4)
    with caplog.at_level(logging.WARNING, logger="jobs.streaming.kinesis_shards"):
        kinesis_shards.check(shards, STREAM, 4, allow_shared=False)
    assert "was resharded" in caplog.text and "shardId-000000000000+shardId-00000000000" in caplog.text


def test_no_parallelism_is_proposed_when_none_up_to_four_times_the_shards_works():
    shards = [Shard("shardId-000000000001", 0, 0, True), Shard("shardId-000000000002", 1, 1, True)]
    assert kinesis_shards.smallest_parallelism(shards, STREAM) is None
    with pytest.raises(ConfigError, match="reshard evenly"):
        kinesis_shards.check(shards, STREAM, 2, allow_shared=False)


@mock_aws
def test_check_stream_reads_the_configured_streams_shards():
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    kinesis.create_stream(StreamName=STREAM, ShardCount=3)
    arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    assert [s.shard_id for s in kinesis_shards.list_shards(_one_shard_a_page(kinesis), STREAM)] == [
        f"shardId-{i:012d}" for i in range(3)]
    config = validate(groups(source__stream_arn=arn, source__aws_endpoint="", job__parallelism="2"), "run", "x.json")
    with pytest.raises(ConfigError, match="job.parallelism 2 puts .* \\(3 open shards\\)"):
        kinesis_shards.check_stream(config)
    kinesis_shards.check_stream(config.with_overrides({"job": {"parallelism": "3"}}))


def test_an_unreachable_stream_names_the_key():
    config = validate(groups(source__aws_endpoint="http://127.0.0.1:9"), "run", "x.json")
    with pytest.raises(ConfigError, match="property group 'source' key 'stream.arn': cannot list the shards"):
        kinesis_shards.check_stream(config)



def _one_shard_a_page(kinesis):
    """moto ignores ExclusiveStartShardId and pages only by NextToken: this pages as Kinesis does."""
    class OneShardAPage:
        def list_shards(self, StreamName, ExclusiveStartShardId=""):
            shards = [s for s in kinesis.list_shards(StreamName=StreamName)["Shards"] if s["ShardId"] > ExclusiveStartShardId]
            return {"Shards": shards[:1], **({"NextToken": "more"} if len(shards) > 1 else {})}
    return OneShardAPage()
