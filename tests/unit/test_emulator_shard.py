"""The emulator's shard look-up fix returns what moto's scan returned: the records after the
iterator's sequence number, at most ``limit``, and the last one's number (unchanged if none)."""

from __future__ import annotations

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
