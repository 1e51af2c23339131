"""The backfill's input preparation (jobs/backfill/input_file.py): the raw archive sorted in bounded
memory into the order the in-memory sort gave, JSON lines joined in name order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.backfill import input_file
from jobs.definitions.config import ConfigError

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _archive_rows(count: int, rng: random.Random) -> list[tuple]:
    """(payload, arrival, shard, sequence): many arrival times shared by several records and shards,
    unique sequence numbers of different lengths ("9" sorts before "10")."""
    sequences = rng.sample(range(1, 100), 60) + rng.sample(range(100, 10**7), count - 60)
    rng.shuffle(sequences)
    return [(f"record-{n}", START + timedelta(milliseconds=rng.randrange(count // 4)), f"shardId-{rng.randrange(3):012d}",
             str(sequence)) for n, sequence in enumerate(sequences)]


def _write(path, rows: list[tuple], arrival_type: pa.DataType) -> None:
    columns = list(zip(*rows))
    table = pa.table({"payload": pa.array(columns[0], pa.string()), "arrival_time": pa.array(columns[1], arrival_type),
                      "shard_id": pa.array(columns[2], pa.string()), "sequence_number": pa.array(columns[3], pa.string())})
    pq.write_table(table, path, row_group_size=700)


def _sorted_rows(path) -> list[tuple]:
    table = pq.read_table(path)
    assert table.schema == input_file.ARCHIVE_SCHEMA
    return list(zip(*(table[name].to_pylist() for name in input_file.ARCHIVE_SCHEMA.names)))


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(input_file, "BATCH_ROWS", 500)  # several batches per file and per run


@pytest.mark.parametrize("run_bytes, fan_in", [(20_000, 3), (input_file.RUN_BYTES, input_file.FAN_IN)],
                         ids=["many runs merged in steps", "one run"])
def test_backfill_archive_order_is_arrival_shard_then_sequence_number(tmp_path, monkeypatch, run_bytes, fan_in):
    monkeypatch.setattr(input_file, "FAN_IN", fan_in)
    rng = random.Random(4)
    rows = _archive_rows(6000, rng)
    files = []
    for n, (part, arrival_type) in enumerate([(rows[:2500], pa.timestamp("ms", tz="UTC")),
                                              (rows[2500:2600], pa.timestamp("ms")),  # no zone: read as UTC
                                              (rows[2600:], pa.timestamp("ms", tz="UTC"))]):
        files.append(tmp_path / f"part-{3 - n}.parquet")  # name order is not arrival order
        _write(files[-1], rng.sample(part, len(part)), arrival_type)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    result = _sorted_rows(input_file.sorted_archive(sorted(files), scratch, run_bytes))

    expected = sorted(rows, key=lambda r: (r[1], r[2], r[3].zfill(64)))
    assert result == expected
    assert [p.name for p in scratch.iterdir()] == ["archive.parquet"]  # the runs are gone


def test_backfill_archive_sort_makes_runs_of_about_its_budget(tmp_path):
    rows = _archive_rows(3000, random.Random(5))
    _write(tmp_path / "part.parquet", rows, pa.timestamp("ms", tz="UTC"))
    batches = list(input_file._keyed_batches([tmp_path / "part.parquet"]))
    runs = list(input_file._sorted_runs(iter(batches), 2 * batches[0].nbytes))
    assert [run.num_rows for run in runs] == [1000, 1000, 1000]  # two batches of 500 each
    for run in runs:
        assert run.equals(run.sort_by(input_file.SORT_KEY))


def test_backfill_archive_without_its_columns_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"payload": ["x"]}), path)
    with pytest.raises(ConfigError, match=rf"{path}: not a raw archive file \(no column arrival_time, shard_id, sequence_number\)"):
        input_file.sorted_archive([path], tmp_path)


def test_backfill_joins_json_lines_in_name_order_adding_missing_line_breaks(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.jsonl").write_bytes(b'{"n": 3}\n')
    (tmp_path / "in" / "a.jsonl").write_bytes(b'{"n": 1}\n{"n": 2}')  # no final line break
    (tmp_path / "in" / "_SUCCESS").write_bytes(b"")
    connector, joined = input_file.prepare(tmp_path / "in", tmp_path)
    assert connector == "file"
    assert joined.read_bytes() == b'{"n": 1}\n{"n": 2}\n{"n": 3}\n'


def test_records_archived_twice_are_replayed_once(tmp_path):
    """A replay upgrade archives again what the old version archived after its start: the copies
    share shard, sequence number and arrival time; records without a sequence number are kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.backfill.input_file import ARCHIVE_SCHEMA, sorted_archive

    moment = pa.array([0, 0, 1, 1, 2, 2], pa.timestamp("ms", tz="UTC"))
    rows = pa.table({"payload": ["a", "b", "c", "c", "d", "e"], "arrival_time": moment,
                     "shard_id": ["s-0", "s-1", "s-0", "s-0", None, None],
                     "sequence_number": ["1", "1", "2", "2", None, None]}, schema=ARCHIVE_SCHEMA)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    pq.write_table(rows.slice(0, 3), tmp_path / "v1" / "part-0")
    pq.write_table(rows.slice(3), tmp_path / "v2" / "part-0")
    out = pq.read_table(sorted_archive([tmp_path / "v1" / "part-0", tmp_path / "v2" / "part-0"], tmp_path))
    assert out["payload"].to_pylist() == ["a", "b", "c", "d", "e"]
