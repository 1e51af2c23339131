"""Online feature reads for inference, from the PostgreSQL tables the job upserts.

    from jobs.reads.serving import OnlineStore
    with OnlineStore.from_config_file("deploy/config/local.json") as store:
        result = store.get_features(["u-42", "u-7"])          # as of now
        result["users"]["u-42"]["user_activity_5m"]["event_count"]

    python -m jobs.reads get --config FILE --user u-42 [--user u-7] [--as-of 2026-01-01T12:00:00Z]
    python -m jobs.reads get --config FILE --user u-42 --fresh     # the window ending now
    python -m jobs.reads prune --config FILE [--days 7] [--dry-run]

For each feature group the window is chosen by jobs/reads/point_in_time.py (the same rule the offline
training sets use): a user with no row in that window had no events in it and gets the group's
neutral values (0 for counts and sums, NULL for max/avg), never an older window's stale values.
One query per group fetches all users; connections come from a pool; windows already found
complete are remembered, so a steady-state read is 2-3 short indexed queries per group.

``fresh=True`` answers instead for the window ending now, from the group's fresh slices: the
open slice counted up to a few seconds ago plus the complete ones before it (jobs/reads/fresh.py,
the rule training_set(fresh=True) shares).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from psycopg import Connection, errors, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from jobs.definitions import fresh_slices
from jobs.definitions.config import DEFAULT_SQL_DIR, Config, load
from jobs.definitions.feature_specs import FeatureSpec, load_specs
from jobs.definitions.schema import PROGRESS_TABLE
from jobs.postgres import connection, credentials, tables
from jobs.reads import fresh
from jobs.reads.point_in_time import Choice, Marker, choose_window, utc_naive

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
_MARKERS_PER_READ = 8  # markers fetched at and before the candidate; the walk rarely needs more than 2


class FeatureReadError(RuntimeError):
    """A feature table that cannot be read as a per-user vector; the message says which and why."""


class _FreshPasswordConnection(Connection):
    """A pooled connection that asks for the password when it connects: connections opened after a
    rotation of the secret use the new one (jobs/postgres/credentials.py Password)."""

    @classmethod
    def connect(cls, conninfo: str = "", *, password_source: credentials.Password,
                **kwargs: Any) -> "_FreshPasswordConnection":
        return password_source.connect(
            lambda password: super(_FreshPasswordConnection, cls).connect(conninfo, password=password, **kwargs))


class OnlineStore:
    """Pooled reader of every feature group's PostgreSQL table (thread-safe)."""

    def __init__(self, config: Config, sql_dir: Path = DEFAULT_SQL_DIR) -> None:
        self.specs = load_specs(sql_dir, config)
        self.fresh_plans = fresh_slices.load_plans(sql_dir, config)
        password = credentials.Password(config)
        kwargs = connection.connection_kwargs(config, password.current())  # a secret that cannot be read stops here
        del kwargs["password"]  # asked for on each connect instead (_FreshPasswordConnection)
        self._where = f"{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"
        # check: a connection cut while idle (say after a rotation) is replaced, not handed out.
        self._pool = ConnectionPool(kwargs=kwargs | {"autocommit": True, "password_source": password},
                                    connection_class=_FreshPasswordConnection, check=ConnectionPool.check_connection,
                                    min_size=1, max_size=config.get_int("rds", "pool.size"), open=True, name="features")
        self._complete: set[tuple[str, datetime]] = set()  # (group, window_end) seen complete
        self._columns: dict[str, list[str]] = {}

    @classmethod
    def from_config_file(cls, path: str | Path, sql_dir: Path = DEFAULT_SQL_DIR) -> "OnlineStore":
        return cls(load(Path(path), "serve"), sql_dir)

    def __enter__(self) -> "OnlineStore":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def get_features(self, user_ids: Iterable[str], as_of: Optional[datetime] = None,
                     groups: Optional[Sequence[str]] = None, *, as_complete: bool = False,
                     fresh: bool = False) -> dict[str, Any]:
        """Feature values of ``user_ids`` as of ``as_of`` (default: now), for every group or ``groups``.

        Windows count from when they were served (jobs/reads/point_in_time.py); ``as_complete`` uses every
        window whose marker exists now, as if each had been served at its end. ``fresh``: the
        window ending now instead, from the fresh slices (jobs/reads/fresh.py); it answers as of
        now only (PostgreSQL keeps each slice's last two versions; earlier moments are the
        training sets' job) and refuses groups whose aggregates slices cannot combine.

        Returns {"as_of", "groups": {group: {window_start, window_end, emitted_until,
        staleness_seconds}}, "users": {user_id: {group: {column: value}}}}. A group whose window is
        unknown (nothing emitted yet, or ``as_of`` older than the kept history) has window None and
        every value None.
        """
        if fresh and (as_of is not None or as_complete):
            raise FeatureReadError("fresh reads answer as of now: use training_set(fresh=True) for other moments")
        users = list(dict.fromkeys(user_ids))
        moment = utc_naive(as_of or datetime.now(timezone.utc))
        result: dict[str, Any] = {"as_of": moment, "groups": {}, "users": {user: {} for user in users}}
        with self._connection() as connection, connection.cursor() as cursor:
            for name in groups or self.specs:
                spec = self._spec(name)
                if fresh:
                    self._fresh_group(cursor, self._fresh_plan(name), moment, users, result)
                    continue
                columns = self._value_columns(cursor, spec)
                choice, latest = self._choose(cursor, spec, moment, as_complete)
                result["groups"][name] = {
                    "window_start": choice.window_start if choice else None,
                    "window_end": choice.window_end if choice else None,
                    "emitted_until": latest,
                    "staleness_seconds": (moment - choice.window_end).total_seconds() if choice else None,
                }
                rows = self._rows(cursor, spec, columns, choice, users) if choice and choice.has_rows else {}
                for user in users:
                    if choice is None:
                        values = {column: None for column in columns}
                    else:
                        values = rows.get(user) or {column: spec.neutral.get(column) for column in columns}
                    result["users"][user][name] = values
        return result

    def prune(self, retention: timedelta, now: Optional[datetime] = None, dry_run: bool = False) -> dict[str, int]:
        """Delete window rows (and markers, and fresh slices) that ended more than ``retention`` ago, per table."""
        cutoff = utc_naive(now or datetime.now(timezone.utc)) - retention
        deleted = {}
        fresh_tables = [plan.table for plan in self.fresh_plans.values() if isinstance(plan, fresh_slices.FreshSpec)]
        with self._connection() as connection, connection.cursor() as cursor:
            for table in [*self.specs, *fresh_tables, PROGRESS_TABLE]:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if cursor.fetchone()[0]:
                    deleted[table] = _delete_before(cursor, table, cutoff, dry_run)
        self._complete = {entry for entry in self._complete if entry[1] >= cutoff}
        return deleted

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._pool.connection(timeout=CONNECT_TIMEOUT_SECONDS) as connection:
                yield connection
        except PoolTimeout:
            raise FeatureReadError(f"cannot connect to PostgreSQL at {self._where} (property group 'rds') "
                                   f"within {CONNECT_TIMEOUT_SECONDS} s") from None
        except errors.UndefinedTable as error:
            raise FeatureReadError(f"{str(error).splitlines()[0]} in {self._where}: run "
                                   "`python -m jobs.feature_job migrate --config FILE` (and the job) first") from None

    def _spec(self, name: str) -> FeatureSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise FeatureReadError(f"no feature group '{name}' (known: {', '.join(self.specs)})") from None

    def _fresh_plan(self, name: str) -> fresh_slices.FreshSpec:
        plan = self.fresh_plans[name]
        if isinstance(plan, fresh_slices.FreshReadsUnsupported):
            raise FeatureReadError(str(plan))
        return plan

    def _fresh_group(self, cursor, plan: fresh_slices.FreshSpec, moment: datetime, users: list[str],
                     result: dict[str, Any]) -> None:
        """One group's fresh values (jobs/reads/fresh.py): both kept versions of the span's slices."""
        start = fresh.span_start(moment, plan)
        served = self._has_served_window(cursor, moment) or self._has_served_slice(cursor, plan, start, moment)
        result["groups"][plan.name] = {"fresh": True, "window_start": start if served else None,
                                       "window_end": moment if served else None}
        versions = fresh.SliceVersions()
        if served:
            stored = plan.stored
            query = sql.SQL("SELECT user_id, window_start, served_from, version, {} FROM {} "
                            "WHERE user_id = ANY(%s) AND window_start >= %s AND window_start <= %s").format(
                sql.SQL(", ").join(map(sql.Identifier, stored)), sql.Identifier(plan.table))
            cursor.execute(query, (users, start, moment))
            for user, window_start, served_from, version, *values in cursor.fetchall():
                versions.add(user, window_start, served_from, version, dict(zip(stored, values)))
            versions.sort()
        for user in users:
            result["users"][user][plan.name] = (versions.value(plan, user, moment) if served
                                                else {column.name: None for column in plan.columns})

    @staticmethod
    def _has_served_slice(cursor, plan: fresh_slices.FreshSpec, start: datetime, moment: datetime) -> bool:
        """Whether some user's slice in the span from ``start`` was served by ``moment``."""
        cursor.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE window_end > %s AND window_start <= %s "
                               "AND served_from <= %s)").format(sql.Identifier(plan.table)), (start, moment, moment))
        return cursor.fetchone()[0]

    @staticmethod
    def _has_served_window(cursor, moment: datetime) -> bool:
        """Whether a window of any group was served by ``moment`` (the job had run)."""
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {PROGRESS_TABLE} WHERE served_from IS NULL OR served_from <= %s)",
                       (moment,))
        return cursor.fetchone()[0]

    def _value_columns(self, cursor, spec: FeatureSpec) -> list[str]:
        """The table's value columns, in table order; refuses tables keyed by more than the user."""
        if spec.name not in self._columns:
            if spec.extra_key:
                raise FeatureReadError(f"{spec.where}: feature '{spec.name}' has more than one row per user and window "
                                       f"(key columns {', '.join(spec.extra_key)}); the feature reads serve one row per user")
            existing = tables.existing_columns(cursor, spec.name)
            if not existing:
                raise FeatureReadError(f"table {spec.name} does not exist: run `python -m jobs.feature_job migrate`")
            self._columns[spec.name] = [name for name in existing if name not in spec.key]
        return self._columns[spec.name]

    def _choose(self, cursor, spec: FeatureSpec, as_of: datetime,
                as_complete: bool) -> tuple[Optional[Choice], Optional[datetime]]:
        # Markers written before served_from existed (NULL) count as served.
        cursor.execute(f"SELECT min(window_end), max(window_end) FILTER (WHERE %s OR served_from IS NULL "
                       f"OR served_from <= %s) FROM {PROGRESS_TABLE} WHERE feature_group = %s",
                       (as_complete, as_of, spec.name))
        first, latest = cursor.fetchone()
        if latest is None:
            return None, None
        cursor.execute(
            f"SELECT window_start, window_end, row_count FROM {PROGRESS_TABLE} "
            "WHERE feature_group = %s AND window_end <= %s ORDER BY window_end DESC LIMIT %s",
            (spec.name, min(as_of, latest), _MARKERS_PER_READ),
        )
        markers = {row[1]: Marker(*row) for row in cursor.fetchall()}
        oldest_fetched = min(markers, default=first)

        def marker_at(window_end: datetime) -> Optional[Marker]:
            if window_end < oldest_fetched and window_end >= first:
                cursor.execute(f"SELECT window_start, window_end, row_count FROM {PROGRESS_TABLE} "
                               "WHERE feature_group = %s AND window_end = %s", (spec.name, window_end))
                row = cursor.fetchone()
                return Marker(*row) if row else None
            return markers.get(window_end)

        def is_complete(marker: Marker) -> bool:
            if (spec.name, marker.window_end) in self._complete:
                return True
            cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE window_end = %s AND window_start = %s")
                           .format(sql.Identifier(spec.name)), (marker.window_end, marker.window_start))
            if cursor.fetchone()[0] >= marker.row_count:
                self._complete.add((spec.name, marker.window_end))
                return True
            return False

        return choose_window(as_of, spec.slide, spec.size, first, latest, marker_at, is_complete), latest

    def _rows(self, cursor, spec: FeatureSpec, columns: list[str], choice: Choice,
              users: list[str]) -> dict[str, dict[str, Any]]:
        query = sql.SQL("SELECT user_id, {} FROM {} WHERE window_end = %s AND window_start = %s AND user_id = ANY(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(spec.name))
        cursor.execute(query, (choice.window_end, choice.window_start, users))
        return {row[0]: dict(zip(columns, row[1:])) for row in cursor.fetchall()}


def _delete_before(cursor, table: str, cutoff: datetime, dry_run: bool, batch: int = 10_000) -> int:
    """Delete in batches so pruning never holds long locks against the job's upserts."""
    identifier = sql.Identifier(table)
    if dry_run:
        cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE window_end < %s").format(identifier), (cutoff,))
        return cursor.fetchone()[0]
    total = 0
    while True:
        cursor.execute(sql.SQL("DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE window_end < %s LIMIT %s))")
                       .format(t=identifier), (cutoff, batch))
        total += cursor.rowcount
        if cursor.rowcount < batch:
            return total
