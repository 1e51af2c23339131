"""The replay upgrade's reads of the Parquet copy: the newest committed marker, and the trim of rows
a checkpoint committed before their window's marker (real Parquet files, local filesystem)."""

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.upgrade import parquet_until, trim_parquet

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


def test_newest_committed_marker_per_group(tmp_path):
    root = tmp_path / "out"
    _write(root / "_progress" / "g" / "dt=20261201" / "part-1", [T, T + MINUTE], {"row_count": [3, 4]})
    _write(root / "_progress" / "g" / "dt=20261201" / ".in-progress", [T + 5 * MINUTE], {"row_count": [1]})
    assert parquet_until(pafs.LocalFileSystem(), str(root), ["g", "absent"]) == {"g": T + MINUTE}
