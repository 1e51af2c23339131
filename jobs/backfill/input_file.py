"""The backfill's input as ONE file in a known order, prepared in bounded memory.

- JSON lines: the files joined in name order (the file source would read a folder's files in no
  guaranteed order), copied in chunks.
- The raw archive (Parquet): sorted by arrival time, shard and sequence number (its files were
  written by parallel writers, so file order is not arrival order). An external merge sort: sorted
  runs of about RUN_BYTES are written to the scratch folder, then merged FAN_IN at a time, a batch
  of each in memory, so memory is bounded by one run, not by the archive.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.definitions.config import ConfigError

ARCHIVE_SCHEMA = pa.schema([("payload", pa.string()), ("arrival_time", pa.timestamp("ms", tz="UTC")),
                            ("shard_id", pa.string()), ("sequence_number", pa.string())])
KEYED_SCHEMA = ARCHIVE_SCHEMA.append(pa.field("sequence_key", pa.string()))
# Sequence numbers are decimal strings of varying length: zero-padded, text order is number order.
SORT_KEY = [("arrival_time", "ascending"), ("shard_id", "ascending"), ("sequence_key", "ascending")]
RUN_BYTES = 32 << 20    # records sorted in memory at once (Arrow size)
FAN_IN = 16             # runs merged at once
BATCH_ROWS = 4096       # rows read at a time, and the row group size of the runs
OUTPUT_ROWS = 131_072   # rows per row group of the sorted file
RUN_COMPRESSION = "lz4"  # scratch runs: the fastest to write that still keeps them small (Flink reads only the output)
COPY_CHUNK = 1 << 20


def input_files(path: Path) -> list[Path]:
    """The file itself, or a folder's files in name order (hidden and _SUCCESS-style files skipped)."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise ConfigError(f"--input {path}: no files found")
    return files


def prepare(path: Path, scratch: Path) -> tuple[str, Path]:
    """(source connector, single input file): JSON lines ("file"), or the raw archive ("archive")."""
    files = input_files(path)
    if _is_parquet(files[0]):
        return "archive", sorted_archive(files, scratch)
    return "file", joined_lines(files, scratch)


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"PAR1"


def joined_lines(files: list[Path], scratch: Path) -> Path:
    """JSON-lines files joined in name order; a file without a final line break gets one."""
    if len(files) == 1:
        return files[0]
    joined = scratch / "input.jsonl"
    with joined.open("wb") as out:
        for file in files:
            last = b""
            with file.open("rb") as source:
                while chunk := source.read(COPY_CHUNK):
                    out.write(chunk)
                    last = chunk[-1:]
            if last not in (b"", b"\n"):
                out.write(b"\n")
    return joined


def sorted_archive(files: list[Path], scratch: Path, run_bytes: int = RUN_BYTES) -> Path:
    """The raw archive's records as one Parquet file in arrival order (shard and sequence number
    break ties)."""
    names = (scratch / f"run-{n:05d}.parquet" for n in itertools.count())
    runs = [_write([run], next(names), KEYED_SCHEMA, BATCH_ROWS, RUN_COMPRESSION)
            for run in _sorted_runs(_keyed_batches(files), run_bytes)]
    while len(runs) > FAN_IN:  # merge FAN_IN runs at a time: the merge holds a batch of each
        merged = []
        for group in (runs[i:i + FAN_IN] for i in range(0, len(runs), FAN_IN)):
            merged.append(_write(_merged(group), next(names), KEYED_SCHEMA, BATCH_ROWS, RUN_COMPRESSION))
            for run in group:
                run.unlink()
        runs = merged
    target = _write((_first_copies(table).drop(["sequence_key"]) for table in _merged(runs)),
                    scratch / "archive.parquet", ARCHIVE_SCHEMA, OUTPUT_ROWS, "snappy")
    for run in runs:
        run.unlink()
    return target


def _first_copies(table: pa.Table) -> pa.Table:
    """Each Kinesis record once. A replay upgrade archives again what the old version archived
    between its start and the stop: the copies share shard, sequence number and arrival time, so
    in sort order they are neighbours (and the merge emits them in the same table)."""
    if table.num_rows < 2:
        return table
    key = pc.binary_join_element_wise(pc.fill_null(table["shard_id"], ""), table["sequence_key"], "|").combine_chunks()
    repeated = pc.equal(key.slice(1), key.slice(0, len(key) - 1))
    # A record without a sequence number (not from Kinesis) is never taken for a copy.
    repeated = pc.and_(repeated, pc.is_valid(table["sequence_number"].combine_chunks().slice(1)))
    return table.filter(pa.concat_arrays([pa.array([True]), pc.invert(repeated)]))


def _keyed_batches(files: list[Path]) -> Iterator[pa.Table]:
    """Every file's records, BATCH_ROWS at a time, in the archive's types plus the sort key."""
    for file in files:
        parquet = pq.ParquetFile(file)
        missing = [name for name in ARCHIVE_SCHEMA.names if name not in parquet.schema_arrow.names]
        if missing:
            raise ConfigError(f"{file}: not a raw archive file (no column {', '.join(missing)})")
        for batch in parquet.iter_batches(BATCH_ROWS, columns=ARCHIVE_SCHEMA.names):
            table = pa.Table.from_batches([batch]).cast(ARCHIVE_SCHEMA)
            if not table.num_rows:
                continue
            if table["arrival_time"].null_count:
                raise ConfigError(f"{file}: a record without arrival_time (not a raw archive file)")
            sequence_key = pc.utf8_lpad(pc.fill_null(table["sequence_number"], ""), 64, "0")
            yield table.append_column("sequence_key", sequence_key)


def _gathered(tables: Iterable[pa.Table], size_of: Callable[[pa.Table], int], limit: int) -> Iterator[pa.Table]:
    """The tables, in order, concatenated into pieces of at least ``limit`` (the last may be smaller)."""
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        pending.append(table)
        size += size_of(table)
        if size >= limit:
            yield pa.concat_tables(pending)
            pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


def _sorted_runs(tables: Iterator[pa.Table], run_bytes: int) -> Iterator[pa.Table]:
    """The tables gathered into sorted runs of about ``run_bytes`` each."""
    for run in _gathered(tables, lambda table: table.nbytes, run_bytes):
        yield run.sort_by(SORT_KEY)


def _write(tables: Iterable[pa.Table], path: Path, schema: pa.Schema, row_group_rows: int, compression: str) -> Path:
    """The tables, in order, as one Parquet file of row groups of ``row_group_rows``. No
    dictionaries: payloads are all different, and trying costs a third of the writing time."""
    with pq.ParquetWriter(path, schema, compression=compression, use_dictionary=False) as writer:
        for piece in _gathered(tables, lambda table: table.num_rows, row_group_rows):
            writer.write_table(piece, row_group_size=row_group_rows)
    return path


def _merged(runs: list[Path]) -> Iterator[pa.Table]:
    """The runs' records in sort order, a sorted table at a time.

    Each run is read a batch at a time. Every record arriving before the frontier (the smallest
    of the open runs' last buffered arrival times) is buffered already, since each run is sorted:
    those records are emitted, sorted, and the run(s) at the frontier read their next batch.
    """
    if not runs:
        return
    readers = [pq.ParquetFile(run).iter_batches(BATCH_ROWS) for run in runs]
    buffers = [pa.Table.from_batches([next(reader)]) for reader in readers]
    open_runs = set(range(len(runs)))
    while open_runs:
        frontier = min(buffers[i]["arrival_time"][-1].value for i in open_runs)
        limit = pa.scalar(frontier, ARCHIVE_SCHEMA.field("arrival_time").type)
        ready = []
        for i, buffer in enumerate(buffers):
            count = pc.sum(pc.less(buffer["arrival_time"], limit)).as_py() or 0
            ready.append(buffer.slice(0, count))
            buffers[i] = buffer.slice(count)
        if any(t.num_rows for t in ready):
            yield pa.concat_tables(ready).sort_by(SORT_KEY)
        for i in [i for i in open_runs if buffers[i]["arrival_time"][-1].value == frontier]:
            batch = next(readers[i], None)
            if batch is None:
                open_runs.discard(i)
            else:
                buffers[i] = pa.concat_tables([buffers[i], pa.Table.from_batches([batch])])
    rest = pa.concat_tables(buffers)
    if rest.num_rows:
        yield rest.sort_by(SORT_KEY)
