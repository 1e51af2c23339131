"""What the local job wrote, read back for people: feature tables in PostgreSQL, files in S3.

The demo's live view and its tests read through these; the feature reads for models are jobs.reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from deploy.local.config import LocalSettings

WINDOW_COLUMNS = ("user_id", "window_start", "window_end")
NUMERIC_TYPES = {"bigint", "integer", "smallint", "double precision", "real", "numeric"}


@dataclass
class FeatureTable:
    name: str
    rows: int
    users: int
    newest_end: datetime | None
    columns: list[str] = field(default_factory=list)
    freshest: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class S3Listing:
    files: Counter[str]                  # data files per top-level folder under the prefix
    newest: list[tuple[datetime, str]]   # (last modified, key), newest first


def feature_tables(settings: LocalSettings, rows: int) -> list[FeatureTable]:
    """Every table in ``public`` shaped like a feature (user_id, window_start, window_end)."""
    with psycopg.connect(**settings.postgres.conninfo()) as conn:
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, data_type in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"):
            columns.setdefault(table, []).append((column, data_type))
        return [_feature_table(conn, name, cols, rows) for name, cols in columns.items()
                if set(WINDOW_COLUMNS) <= {c for c, _ in cols}]


def _feature_table(conn: psycopg.Connection[Any], name: str, columns: list[tuple[str, str]],
                   rows: int) -> FeatureTable:
    table = sql.Identifier(name)
    count, users, newest = conn.execute(sql.SQL(
        "SELECT count(*), count(DISTINCT user_id), max(window_end) FROM {}").format(table)).fetchone()  # type: ignore[misc]
    # The newest window, busiest users first (by the first numeric feature column: event_count).
    numeric = [c for c, t in columns if c not in WINDOW_COLUMNS and t in NUMERIC_TYPES]
    order = (sql.SQL("{} DESC NULLS LAST, user_id").format(sql.Identifier(numeric[0])) if numeric
             else sql.SQL("user_id"))
    cursor = conn.execute(sql.SQL(
        "SELECT * FROM {} WHERE window_end = (SELECT max(window_end) FROM {}) ORDER BY {} LIMIT %s").format(
        table, table, order), (rows,))
    names = [c.name for c in cursor.description or []]
    return FeatureTable(name, count, users, newest, names, cursor.fetchall())


def is_data_file(key: str) -> bool:
    # In-progress part files start with '.', commit markers with '_' (_SUCCESS).
    return not key.rsplit("/", 1)[-1].startswith((".", "_"))


def data_files(s3: Any, bucket: str, prefix: str) -> list[tuple[datetime, str]]:
    """(last modified, key) of the data files under ``prefix``, newest first."""
    found = [(obj["LastModified"], obj["Key"])
             for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
             for obj in page.get("Contents", []) if is_data_file(obj["Key"])]
    return sorted(found, reverse=True)


def folder(settings: LocalSettings, name: str = "") -> str:
    return "".join(f"{part}/" for part in (settings.prefix, name) if part)


def s3_listing(s3: Any, settings: LocalSettings, newest: int = 3) -> S3Listing:
    root = folder(settings)
    files = data_files(s3, settings.bucket, root)
    return S3Listing(Counter(key[len(root):].split("/", 1)[0] for _, key in files), files[:newest])


def read_parquet(s3: Any, bucket: str, key: str) -> Any:
    """One Parquet object as a pyarrow Table, read through boto3 (no S3 filesystem needed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(pa.BufferReader(body))


def quarantine_reasons(s3: Any, settings: LocalSettings, max_files: int = 50) -> tuple[Counter[str], int, int]:
    """Reasons counted in the newest ``max_files`` quarantine files: (reasons, files read, files)."""
    reasons: Counter[str] = Counter()
    files = data_files(s3, settings.bucket, folder(settings, "_quarantine"))
    for _, key in files[:max_files]:
        reasons.update(read_parquet(s3, settings.bucket, key).column("reason").to_pylist())
    return reasons, min(len(files), max_files), len(files)
