"""Point-in-time training sets from the offline Parquet copy (S3 or a backfill's local folder).

    from jobs.reads.training import OfflineStore
    store = OfflineStore.from_config_file("deploy/config/local.json")    # or OfflineStore("out/")
    table = store.training_set(labels, features=["user_activity_5m", "user_activity_1h.amount_max"])

``labels`` has one row per example: ``user_id``, ``timestamp`` (naive = UTC) and any label
columns; a pandas DataFrame in gives a DataFrame out, a pyarrow Table gives a Table. Each
requested feature is added as a column ``<group>.<column>``, plus ``<group>.window_end`` (the
window used). The value is what jobs.reads.serving's get_features would have answered with as_of =
the label's timestamp, by the same rule (jobs/reads/point_in_time.py): the window ending at
min(timestamp rounded down to the slide, the newest window served by then), its row, else the
group's neutral values — so training and serving see the same numbers. ``as_complete=True``
counts every window in the dataset as served at its end (backfilled history). ``fresh=True``
gives instead what get_features(fresh=True) answered at each label's time, from the fresh slices'
changelog (<group>__fresh/, jobs/reads/fresh.py), with ``<group>.window_start`` (the span's start).
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from jobs.definitions import fresh_slices
from jobs.definitions.config import DEFAULT_SQL_DIR, Config, is_aws_endpoint, load
from jobs.definitions.feature_specs import FeatureSpec, load_specs
from jobs.reads import fresh
from jobs.reads.point_in_time import EPOCH, Choice, Marker, choose_window, utc_naive

_PARTITION_TYPES = {"dt": pa.string(), "hr": pa.string()}


class TrainingSetError(ValueError):
    """Bad labels or feature names; the message says which."""


@dataclass
class _GroupData:
    """One group's markers and the rows of the windows the labels need, loaded once."""

    spec: FeatureSpec
    markers: dict[datetime, Marker]
    served: list[tuple[datetime, datetime]] = field(default_factory=list)  # (served_from, newest end by then)
    counts: dict[datetime, int] = field(default_factory=dict)        # window_end -> rows stored
    rows: dict[tuple[str, datetime], dict[str, Any]] = field(default_factory=dict)

    def latest_served(self, moment: datetime, as_complete: bool) -> Optional[datetime]:
        """The newest window end served by ``moment`` (any, with ``as_complete``)."""
        if as_complete:
            return max(self.markers, default=None)
        position = bisect.bisect_right(self.served, (moment, datetime.max))
        return self.served[position - 1][1] if position else None


class OfflineStore:
    def __init__(self, root: str, config: Optional[Config] = None, sql_dir: Path = DEFAULT_SQL_DIR,
                 filesystem: Optional[pafs.FileSystem] = None) -> None:
        """``root``: the job's output.path (s3://BUCKET/PREFIX) or a local folder (backfill --output-dir)."""
        config = config or _placeholder_free_config()
        self.specs = load_specs(sql_dir, config)
        self.fresh_plans = fresh_slices.load_plans(sql_dir, config)
        self._filesystem, self._root = filesystem_and_path(root, config, filesystem)

    @classmethod
    def from_config_file(cls, path: str | Path, sql_dir: Path = DEFAULT_SQL_DIR) -> "OfflineStore":
        config = load(Path(path), "train")
        return cls(config.get("output", "path"), config, sql_dir)

    def training_set(self, labels: Any, features: Optional[Sequence[str]] = None, *,
                     user_column: str = "user_id", time_column: str = "timestamp", as_complete: bool = False,
                     fresh: bool = False) -> Any:
        """``labels`` plus the feature columns, point-in-time correct (see the module docstring)."""
        table = _as_table(labels)
        for column in (user_column, time_column):
            if column not in table.column_names:
                raise TrainingSetError(f"labels need a '{column}' column (have {', '.join(table.column_names)})")
        users = table.column(user_column).to_pylist()
        millis = _epoch_millis(table.column(time_column))
        moments = [None if ms is None else EPOCH + timedelta(milliseconds=ms) for ms in millis]
        # Fresh values are known once a window of any group was served (jobs/reads/fresh.py).
        markers = [self._markers(spec) for spec in self.specs.values()] if fresh else []
        for name, columns in self._requested(features).items():
            spec = self.specs[name]
            if fresh:
                table = self._append_fresh(table, self._fresh_plan(name), columns, users, moments, markers)
                continue
            group = self._load(spec, moments)
            # The choice depends only on the time rounded down to the slide and the newest window
            # served by then: decide once per such pair.
            slide_ms = spec.slide // timedelta(milliseconds=1)
            keys = [None if moment is None else (ms - ms % slide_ms, group.latest_served(moment, as_complete))
                    for ms, moment in zip(millis, moments)]
            decided = {key: self._choose(group, EPOCH + timedelta(milliseconds=key[0]), key[1])
                       for key in set(keys) if key is not None}
            chosen = [None if key is None else decided[key] for key in keys]
            rows = [group.rows.get((user, choice.window_end)) if choice and choice.has_rows else None
                    for user, choice in zip(users, chosen)]
            ends = [choice.window_end if choice else None for choice in chosen]
            table = table.append_column(f"{name}.window_end", pa.array(ends, pa.timestamp("ms")))
            for column in columns:
                neutral = spec.neutral.get(column)
                values = [None if choice is None else row[column] if row else neutral for choice, row in zip(chosen, rows)]
                table = table.append_column(f"{name}.{column}", pa.array(values))
        return _to_pandas(table) if _is_pandas(labels) else table

    def _fresh_plan(self, name: str) -> fresh_slices.FreshSpec:
        plan = self.fresh_plans[name]
        if isinstance(plan, fresh_slices.FreshReadsUnsupported):
            raise TrainingSetError(str(plan))
        return plan

    def _append_fresh(self, table: pa.Table, plan: fresh_slices.FreshSpec, columns: list[str], users: list,
                      moments: list[Optional[datetime]], markers: list[_GroupData]) -> pa.Table:
        """The fresh values at each label's time (jobs/reads/fresh.py), as get_features(fresh=True) gave them."""
        versions = self._fresh_versions(plan, moments)
        known = [moment is not None and (any(group.latest_served(moment, False) for group in markers)
                                         or versions.any_served(plan, moment)) for moment in moments]
        values = [versions.value(plan, user, moment) if ok else None for user, moment, ok in zip(users, moments, known)]
        starts = [fresh.span_start(moment, plan) if ok else None for moment, ok in zip(moments, known)]
        table = table.append_column(f"{plan.name}.window_start", pa.array(starts, pa.timestamp("ms")))
        for column in columns:
            table = table.append_column(f"{plan.name}.{column}", pa.array([v[column] if v else None for v in values]))
        return table

    def _fresh_versions(self, plan: fresh_slices.FreshSpec, moments: list[Optional[datetime]]) -> fresh.SliceVersions:
        """The changelog's versions of the slices the labels' spans cover (days of window_start)."""
        versions = fresh.SliceVersions()
        present = [moment for moment in moments if moment is not None]
        dataset = self._dataset(plan.table)
        if dataset is None or not present:
            return versions
        days = _days(fresh.span_start(min(present), plan).date(), max(present).date())
        stored = plan.stored
        rows = dataset.to_table(columns=["user_id", "window_start", "served_from", "version", *stored],
                                filter=pc.field("dt").isin(days))
        for row in rows.to_pylist():
            versions.add(row["user_id"], utc_naive(row["window_start"]), utc_naive(row["served_from"]), row["version"],
                         {name: row[name] for name in stored})
        versions.sort()
        return versions

    def _requested(self, features: Optional[Sequence[str]]) -> dict[str, list[str]]:
        """{group: [columns]} from names like "user_activity_5m" or "user_activity_5m.event_count"."""
        requested: dict[str, list[str]] = defaultdict(list)
        for item in features or list(self.specs):
            name, _, column = item.partition(".")
            if name not in self.specs:
                raise TrainingSetError(f"no feature group '{name}' (known: {', '.join(self.specs)})")
            known = self.specs[name].columns
            if column and column not in known:
                raise TrainingSetError(f"feature group '{name}' has no column '{column}' (known: {', '.join(known)})")
            for wanted in [column] if column else known:
                if wanted not in requested[name]:
                    requested[name].append(wanted)
        return dict(requested)

    def _dataset(self, *parts: str) -> Optional[ds.Dataset]:
        path = "/".join([self._root, *parts])
        if self._filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        keys = ["dt"] if parts[0] == "_progress" else ["dt", "hr"]  # strings: dt=20260101 is not a number
        partitioning = ds.partitioning(pa.schema([(key, pa.string()) for key in keys]), flavor="hive")
        return ds.dataset(path, filesystem=self._filesystem, format="parquet", partitioning=partitioning)

    def _markers(self, spec: FeatureSpec) -> _GroupData:
        """A group's progress markers and when each was served."""
        progress = self._dataset("_progress", spec.name)
        markers, served_from = {}, {}
        if progress is not None:
            for row in progress.to_table(columns=["window_start", "window_end", "row_count", "served_from"]).to_pylist():
                end = utc_naive(row["window_end"])
                markers[end] = Marker(utc_naive(row["window_start"]), end, row["row_count"])
                # Markers written before served_from existed (null) count as served, as online.
                served_from[end] = utc_naive(row["served_from"]) if row["served_from"] else datetime.min
        group = _GroupData(spec, markers)
        newest = None
        for moment, end in sorted((moment, end) for end, moment in served_from.items()):
            newest = end if newest is None else max(newest, end)
            group.served.append((moment, newest))
        return group

    def _load(self, spec: FeatureSpec, moments: list[Optional[datetime]]) -> _GroupData:
        if spec.extra_key:
            raise TrainingSetError(f"{spec.where}: feature '{spec.name}' has more than one row per user and window "
                                   f"(key columns {', '.join(spec.extra_key)}); training sets take one row per user")
        group = self._markers(spec)
        markers = group.markers
        rows = self._dataset(spec.name)
        present = [moment for moment in moments if moment is not None]
        if rows is None or not markers or not present:
            return group
        # Read only the days (dt = window_start's day) that can hold a window the labels need; the
        # extra day covers a window that starts before midnight and a step back past it.
        days = _days((min(present) - spec.size).date() - timedelta(days=1), min(max(present), max(markers)).date())
        table = rows.to_table(columns=["user_id", "window_start", "window_end", *spec.columns],
                              filter=pc.field("dt").isin(days))
        for row in table.to_pylist():
            end = utc_naive(row["window_end"])
            group.counts[end] = group.counts.get(end, 0) + 1
            group.rows[(row["user_id"], end)] = {column: row[column] for column in spec.columns}
        return group

    @staticmethod
    def _choose(group: _GroupData, moment: datetime, latest: Optional[datetime]) -> Optional[Choice]:
        markers = group.markers
        if not markers:
            return None
        return choose_window(moment, group.spec.slide, group.spec.size, min(markers), latest, markers.get,
                             lambda marker: group.counts.get(marker.window_end, 0) >= marker.row_count)


def filesystem_and_path(root: str, config: Optional[Config],
                         filesystem: Optional[pafs.FileSystem]) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, root.split("://", 1)[-1].rstrip("/")
    if root.startswith("s3://"):
        endpoint = config.get("output", "s3.endpoint") if config else ""
        path = root.removeprefix("s3://").rstrip("/")
        if is_aws_endpoint(endpoint):
            return pafs.S3FileSystem(region=pafs.resolve_s3_region(path.split("/")[0])), path
        scheme, _, host = endpoint.partition("://")
        # An emulator takes any key; the environment's own credentials win when set.
        keys = {} if os.environ.get("AWS_ACCESS_KEY_ID") else {"access_key": "test", "secret_key": "test"}
        return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, **keys), path
    path = root.removeprefix("file://")
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _days(first: date, last: date) -> list[str]:
    """The dt partition values from ``first`` to ``last``."""
    return [(first + timedelta(days=n)).strftime("%Y%m%d") for n in range((last - first).days + 1)]


def _placeholder_free_config() -> Config:
    """Feature files rarely use ${group.key}; without a config file such a file fails clearly."""
    return Config({}, "(no config)")


def _is_pandas(value: Any) -> bool:
    return type(value).__module__.startswith("pandas")


def _to_pandas(table: pa.Table) -> Any:
    """Integer columns stay integers where a value is unknown (pandas' nullable Int64, not float NaN)."""
    import pandas as pd

    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}.get)


def _as_table(labels: Any) -> pa.Table:
    if isinstance(labels, pa.Table):
        return labels
    if _is_pandas(labels):
        return pa.Table.from_pandas(labels, preserve_index=False)
    if isinstance(labels, list):
        return pa.Table.from_pylist(labels)
    raise TrainingSetError(f"labels must be a pandas DataFrame, a pyarrow Table or a list of dicts, got {type(labels).__name__}")


def _epoch_millis(column: pa.ChunkedArray) -> list[Optional[int]]:
    """Label times as epoch milliseconds: naive times are UTC, aware ones are converted (Arrow keeps
    both as UTC instants)."""
    if not pa.types.is_timestamp(column.type):
        raise TrainingSetError(f"the timestamp column must hold timestamps, got {column.type}")
    return pc.cast(pc.floor_temporal(column, unit="millisecond") if column.type.unit in ("us", "ns") else column,
                   pa.timestamp("ms", column.type.tz)).cast(pa.int64()).to_pylist()
