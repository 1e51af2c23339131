"""The emulator's shard look-up fix returns what moto's scan returned: the records after the
iterator's sequence number, at most ``limit``, and the last one's number (unchanged if none).
Its resharding fix splits and merges as Kinesis does: parents keep their records and end."""

from __future__ import annotations

import boto3
from moto import mock_aws
from moto.kinesis.models import Shard

from deploy.local import emulator


def _shard(records: int) -> Shard:
    shard = Shard(0, 0, 2**128 - 1)
    for n in range(records):
        shard.put_record(f"k{n}", f"data-{n}", None)
    return shard


def test_get_records_after_a_sequence_number():
    assert emulator.patch_kinesis_shard_lookups()
    shard = _shard(25)
    for last, limit in ((0, 10), (0, None), (7, 5), (20, 10), (25, 10), (24, 1)):
        records, new_last, _ = shard.get_records(str(last), limit)
        wanted = list(range(last + 1, 26))[:limit]
        assert [r.sequence_number for r in records] == wanted
        assert new_last == (wanted[-1] if wanted else last)


def test_sequence_numbers_stay_consecutive_and_ends_are_found():
    assert emulator.patch_kinesis_shard_lookups()
    shard = _shard(1000)
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (1, 1000)
    assert shard.put_record("k", "more", None) == "1001"
    assert (_shard(0).get_min_sequence_number(), _shard(0).get_max_sequence_number()) == (0, 0)


def _read_shard(kinesis, shard_id: str) -> tuple[list[bytes], bool]:
    """Every record of a shard from TRIM_HORIZON, and whether GetRecords ended it (closed shard)."""
    iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    data: list[bytes] = []
    for _ in range(5):
        response = kinesis.get_records(ShardIterator=iterator)
        data += [record["Data"] for record in response["Records"]]
        iterator = response.get("NextShardIterator")
        if not iterator:
            return data, True
    return data, False


def test_a_split_keeps_the_parents_records_and_new_puts_go_to_the_children():
    assert emulator.patch_kinesis_resharding() and emulator.patch_kinesis_shard_lookups()
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=2)
        parent = kinesis.list_shards(StreamName="s")["Shards"][0]
        start, end = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        middle = (start + end) // 2
        for n in range(3):
            kinesis.put_record(StreamName="s", Data=f"before-{n}".encode(), PartitionKey="k", ExplicitHashKey=str(start))
        kinesis.split_shard(StreamName="s", ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle))
        low = kinesis.put_record(StreamName="s", Data=b"after-low", PartitionKey="k", ExplicitHashKey=str(start))
        high = kinesis.put_record(StreamName="s", Data=b"after-high", PartitionKey="k", ExplicitHashKey=str(middle))
        children = [s["ShardId"] for s in kinesis.list_shards(StreamName="s")["Shards"] if s.get("ParentShardId") == parent["ShardId"]]
        assert [low["ShardId"], high["ShardId"]] == children
        assert _read_shard(kinesis, parent["ShardId"]) == ([b"before-0", b"before-1", b"before-2"], True)
        assert _read_shard(kinesis, children[0])[0] == [b"after-low"]
        assert _read_shard(kinesis, children[1])[0] == [b"after-high"]
        assert _read_shard(kinesis, children[1])[1] is False  # an open shard never ends


def test_a_merge_keeps_both_parents_records():
    assert emulator.patch_kinesis_resharding()
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=2)
        first, second = kinesis.list_shards(StreamName="s")["Shards"]
        for shard in (first, second):
            kinesis.put_record(StreamName="s", Data=shard["ShardId"].encode(), PartitionKey="k",
                               ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"])
        kinesis.merge_shards(StreamName="s", ShardToMerge=first["ShardId"], AdjacentShardToMerge=second["ShardId"])
        merged = kinesis.put_record(StreamName="s", Data=b"after", PartitionKey="k", ExplicitHashKey="0")["ShardId"]
        assert merged not in (first["ShardId"], second["ShardId"])
        for shard in (first, second):
            assert _read_shard(kinesis, shard["ShardId"]) == ([shard["ShardId"].encode()], True)
        assert _read_shard(kinesis, merged)[0] == [b"after"]
