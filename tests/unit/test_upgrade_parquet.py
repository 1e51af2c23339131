"""The replay upgrade's reads of the Parquet copy: how far every window is whole (committed markers
checked against committed rows), and the trim of rows a checkpoint committed before their
window's marker (real Parquet files, local filesystem)."""

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.definitions.replay import Window
from jobs.operations.upgrade import parquet_until, trim_parquet

T = datetime(2026, 12, 1, 10, 0)
MINUTE = timedelta(minutes=1)


def _write(path, ends, extra=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"user_id": [f"u-{n}" for n in range(len(ends))],
               "window_start": pa.array([end - 5 * MINUTE for end in ends], pa.timestamp("ms", tz="UTC")),
               "window_end": pa.array(ends, pa.timestamp("ms", tz="UTC")), **(extra or {})}
    pq.write_table(pa.table(columns), path)


def test_trim_keeps_windows_up_to_the_marker_and_skips_older_hours(tmp_path):
    root = tmp_path / "out"
    _write(root / "g" / "dt=20261201" / "hr=09" / "part-old", [T - 2 * MINUTE])
    _write(root / "g" / "dt=20261201" / "hr=10" / "part-1", [T + MINUTE, T + 2 * MINUTE, T + 3 * MINUTE])
    _write(root / "g" / "dt=20261201" / "hr=10" / "part-2", [T + 4 * MINUTE])
    _write(root / "g" / "dt=20261201" / "hr=10" / ".part-in-progress", [T + 9 * MINUTE])
    filesystem = pafs.LocalFileSystem()
    removed = trim_parquet(filesystem, str(root / "g"), T + 2 * MINUTE, T - 2 * MINUTE)
    assert removed == 2
    kept = pq.read_table(root / "g" / "dt=20261201" / "hr=10" / "part-1")["window_end"].to_pylist()
    assert [end.replace(tzinfo=None) for end in kept] == [T + MINUTE, T + 2 * MINUTE]
    assert not (root / "g" / "dt=20261201" / "hr=10" / "part-2").exists()  # nothing left in it
    assert (root / "g" / "dt=20261201" / "hr=10" / ".part-in-progress").exists()  # not committed: not ours


WINDOWS = {"g": Window(MINUTE, 5 * MINUTE), "absent": Window(MINUTE, 5 * MINUTE)}


def _rows(root, end, count):
    _write(root / "g" / "dt=20261201" / "hr=09" / f"part-{end:%H%M}", [end] * count)


def test_newest_committed_marker_whose_rows_are_all_there(tmp_path):
    root = tmp_path / "out"
    _write(root / "_progress" / "g" / "dt=20261201" / "part-1", [T, T + MINUTE], {"row_count": [3, 4]})
    _write(root / "_progress" / "g" / "dt=20261201" / ".in-progress", [T + 5 * MINUTE], {"row_count": [1]})
    _rows(root, T, 3)
    _rows(root, T + MINUTE, 4)
    assert parquet_until(pafs.LocalFileSystem(), str(root), WINDOWS) == {"g": T + MINUTE}


def test_a_marker_whose_rows_are_not_visible_yet_is_not_written(tmp_path):
    """A stop between a checkpoint and the compaction after it: the markers of that checkpoint are
    committed, the compacted feature files are not (the CI failure of 2026-12-01)."""
    root = tmp_path / "out"
    _write(root / "_progress" / "g" / "dt=20261201" / "part-1", [T, T + MINUTE, T + 2 * MINUTE], {"row_count": [3, 4, 1]})
    _rows(root, T, 3)
    _rows(root, T + MINUTE, 2)  # two of its four rows are visible
    _rows(root, T + 2 * MINUTE, 1)
    assert parquet_until(pafs.LocalFileSystem(), str(root), WINDOWS) == {"g": T}
    (root / "g" / "dt=20261201" / "hr=09" / f"part-{T:%H%M}").unlink()  # not even the oldest window is whole
    assert parquet_until(pafs.LocalFileSystem(), str(root), WINDOWS) == {"g": T - MINUTE}
