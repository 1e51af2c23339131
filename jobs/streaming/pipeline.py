"""Turn the SQL catalog into ONE StatementSet: one source scan, one dedup, every sink.

Errors from Flink are re-raised as SqlFileError pointing at the SQL file and line.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyflink.table import StatementSet, Table, TableEnvironment
from pyflink.table.expressions import call_sql

from jobs.definitions import fresh_slices, replay
from jobs.definitions.config import Config
from jobs.definitions.feature_specs import key_of
from jobs.definitions.schema import Column, FeatureSchema, check_schema
from jobs.definitions.sql_catalog import Catalog, Feature, SqlFileError, Statement, load_catalog
from jobs.streaming import environment, plan_fingerprint, sinks, stream_graph

log = logging.getLogger(__name__)

_FLINK_POSITION = re.compile(r"line (\d+), column (\d+)")


@dataclass
class Pipeline:
    """What was built: the statement set plus the derived feature schemas."""

    statement_set: StatementSet
    t_env: TableEnvironment
    catalog: Catalog
    config: Config
    features: list[FeatureSchema] = field(default_factory=list)
    fresh: list[FeatureSchema] = field(default_factory=list)  # the groups' fresh slice tables
    sink_tables: list[str] = field(default_factory=list)

    @functools.cached_property
    def _transformations(self):
        return stream_graph.translate(self.t_env, self.statement_set)

    def fingerprint(self) -> plan_fingerprint.Fingerprint:
        """Flink's IDs of the stateful operators this job would run with (nothing runs)."""
        return plan_fingerprint.compute(stream_graph.build(self.t_env, self._transformations), self.catalog.features)

    def submit(self):
        """Start the job on the local MiniCluster, from the translation a fingerprint made if
        there was one, under the configuration as it is now: its Java JobClient."""
        return stream_graph.submit(self.t_env, stream_graph.build(self.t_env, self._transformations))


def _flink_message(error: Exception) -> str:
    text = str(error).strip()
    # PyFlink prefixes the Java class and appends the Java stack trace: keep the useful lines.
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    message = " ".join(lines[:3])
    return re.sub(r"^(org\.apache\.flink\.[\w.]+Exception: )+", "", message)


def _run(statement: Statement, action: Callable[[str], object]) -> object:
    """Run one statement; on failure point at the file line Flink complained about."""
    try:
        return action(statement.text)
    except Exception as error:  # noqa: BLE001 - PyFlink raises many Java-backed types
        message = _flink_message(error)
        match = _FLINK_POSITION.search(message)
        line = int(match.group(1)) if match else 1
        raise SqlFileError(statement.path, statement.first_line + line - 1, message) from None


def _schema_of(table: Table, name: str, feature: Feature, key: tuple[str, ...]) -> FeatureSchema:
    """The resolved output schema of a query, as the planner prints its types, with ``key``."""
    resolved = table._j_table.getResolvedSchema()  # the Python TableSchema loses type details
    columns = [
        _column_from_printed(column.getName(), column.getDataType().toString())
        for column in resolved.getColumns()
    ]
    return check_schema(name, feature.query.where(), columns, key)


def _column_from_printed(name: str, printed: str) -> Column:
    nullable = not printed.endswith(" NOT NULL")
    flink_type = printed.removesuffix(" NOT NULL")
    if flink_type == "VARCHAR(2147483647)":
        flink_type = "STRING"
    flink_type = re.sub(r" \*ROWTIME\*| \*PROCTIME\*", "", flink_type)
    return Column(name, flink_type, nullable)


def register_events(t_env: TableEnvironment, catalog: Catalog) -> None:
    """Register the sources and the `events` view (views/events.sql) only: what a batch query over
    the input's records needs (the dedup view reads the watermark, which batch mode has not)."""
    for statement in catalog.functions + catalog.tables + [view for view in catalog.views if view.path.stem == "events"]:
        _run(statement, t_env.execute_sql)


def register_features(t_env: TableEnvironment, catalog: Catalog,
                      only_windows: str | None = None) -> list[FeatureSchema]:
    """Register sources, views, UDFs and one view per feature; return the features' schemas.

    ``only_windows``: a SQL condition on window_start/window_end every feature row must meet
    (bounded runs: a backfill writes only the windows its input covers completely). Applied to
    the feature's view, so every sink derived from it (rows, markers, counter) sees the same rows.
    """
    for statement in catalog.definitions:
        _run(statement, t_env.execute_sql)

    from udfs import register_all  # late import: UDF modules import PyFlink's Python API

    registered = register_all(t_env)
    if registered:
        log.info("registered UDFs: %s", ", ".join(registered))

    schemas = []
    for feature in catalog.features:
        table = _run(feature.query, t_env.sql_query)
        schemas.append(_schema_of(table, feature.name, feature, key_of(feature.query)))  # key: as the reads see it
        if only_windows:
            table = table.where(call_sql(only_windows))
        t_env.create_temporary_view(feature.name, table)
    return schemas


def register_fresh(t_env: TableEnvironment, catalog: Catalog, config: Config) -> list[FeatureSchema]:
    """Register the fresh slice views (jobs/definitions/fresh_slices.py) of every group that can have them, after
    register_features; return their tables' schemas. None when features.fresh.interval.seconds is 0."""
    interval = fresh_slices.interval_seconds(config)
    tables = []
    for feature in catalog.features if interval else []:
        try:
            fresh = fresh_slices.plan(feature)
        except fresh_slices.FreshReadsUnsupported as reason:
            log.info("%s", reason)
            continue
        for name, query in fresh_slices.queries(fresh, interval):
            at_feature = Statement(feature.query.path, feature.query.first_line, query)
            t_env.create_temporary_view(name, _run(at_feature, t_env.sql_query))
        tables.append(_schema_of(t_env.from_path(fresh.table), fresh.table, feature, fresh_slices.KEY))
    return tables


def build(t_env: TableEnvironment, catalog: Catalog, config: Config, *, output_root: str,
          jdbc_password: str | None, streaming_commit: bool, only_windows: str | None = None) -> Pipeline:
    """Everything in one StatementSet: each feature's derived sinks, then the fixed sinks.

    ``jdbc_password`` None means no PostgreSQL sinks (backfill writes Parquet only);
    ``only_windows``: see register_features (the streaming job passes none). A streaming job writes
    each group's windows past its replay cut-over only (jobs/definitions/replay.py); a backfill all.
    """
    pipeline = Pipeline(t_env.create_statement_set(), t_env, catalog, config)
    cut = config.cut() if streaming_commit else replay.Cut("", None)
    schemas = register_features(t_env, catalog, only_windows)
    fresh_tables = {table.name.removesuffix(fresh_slices.TABLE_SUFFIX): table
                    for table in (register_fresh(t_env, catalog, config) if streaming_commit else [])}
    for feature, schema in zip(catalog.features, schemas):
        pipeline.features.append(schema)
        commit_delay = config.get_int("output", "partition.commit.delay.minutes") if streaming_commit else None

        def at_feature(text: str) -> Statement:
            """Derived statements are reported at the feature file's first line."""
            return Statement(feature.query.path, feature.query.first_line, text)

        progress_name, progress_query = sinks.progress_view(schema, sinks.served_from_delay_seconds(config))
        t_env.create_temporary_view(progress_name, _run(at_feature(progress_query), t_env.sql_query))
        after = cut.writes_after(schema.name)
        derived = [sinks.parquet_sink(schema, output_root, commit_delay, after), sinks.counter_sink(schema),
                   sinks.parquet_progress_sink(schema, output_root, after)]
        if jdbc_password is not None:
            derived += [sinks.jdbc_sink(schema, config, jdbc_password, after),
                        sinks.jdbc_progress_sink(schema, config, jdbc_password, after)]
        fresh = fresh_tables.get(feature.name)
        if fresh is not None:
            pipeline.fresh.append(fresh)
            derived.append(sinks.parquet_sink(fresh, output_root, None, after))
            if jdbc_password is not None:
                derived.append(sinks.jdbc_sink(fresh, config, jdbc_password, after, fresh_slices.FLUSH_INTERVAL_MS))
        for ddl, insert in derived:
            _run(at_feature(ddl), t_env.execute_sql)
            _run(at_feature(insert), pipeline.statement_set.add_insert_sql)
            pipeline.sink_tables.append(re.search(r"`([^`]+)`", ddl).group(1))

    for statement in catalog.sinks:
        if re.match(r"(?is)\s*(--[^\n]*\n\s*)*INSERT\b", statement.text):
            _run(statement, pipeline.statement_set.add_insert_sql)
        else:
            _run(statement, t_env.execute_sql)
    log.info("pipeline: %d feature group(s) %s, %d sink table(s)", len(pipeline.features),
             [f.name for f in pipeline.features], len(pipeline.sink_tables))
    return pipeline


def streaming(config: Config, sql_dir: Path, password: str, *, managed: bool = False) -> Pipeline:
    """The streaming job this config and SQL give, built (not submitted)."""
    t_env = environment.create(config, managed=managed, streaming_source=True)
    return build(t_env, load_catalog(sql_dir, "kinesis", config), config,
                 output_root=config.get("output", "path"), jdbc_password=password, streaming_commit=True)


def fingerprint_of(config: Config, sql_dir: Path) -> plan_fingerprint.Fingerprint:
    """The fingerprint of the streaming job this config and SQL give (deploy compares it too)."""
    return streaming(config, sql_dir, password="not-fetched-for-fingerprint").fingerprint()


def sink_root(path: Path) -> str:
    """A local directory as the file:// URI the filesystem connector wants."""
    return path.resolve().as_uri()
