"""The PostgreSQL tables the feature SQL needs: the ``migrate`` command, and the check ``run`` makes
before it submits the job."""

from __future__ import annotations

import argparse
import logging

from jobs.definitions.config import Config, is_aws_endpoint
from jobs.definitions.schema import FeatureSchema
from jobs.definitions.sql_catalog import load_catalog
from jobs.postgres import connection, credentials, tables
from jobs.streaming import environment, pipeline

log = logging.getLogger(__name__)


def migrate(args: argparse.Namespace, config: Config) -> int:
    t_env = environment.create(config, managed=False, streaming_source=True)
    catalog = load_catalog(args.sql_dir, "kinesis", config)
    schemas = pipeline.register_features(t_env, catalog) + pipeline.register_fresh(t_env, catalog, config)
    with connection.jdbc_connection(config, credentials.jdbc_password(config)) as database:
        changes = tables.migrate(database, schemas, args.dry_run)
    for change in changes:
        print(change.statement + ";")
    verb = "would run" if args.dry_run else "ran"
    print(f"-- {verb} {len(changes)} statement(s) for {len(schemas)} feature table(s)")
    return 0


def in_the_cloud(managed: bool, config: Config) -> bool:
    """Managed Flink, or a config with AWS endpoints: its database is production's."""
    endpoints = (config.get("source", "aws.endpoint"), config.get("output", "s3.endpoint"))
    return managed or any(is_aws_endpoint(url) for url in endpoints)


def check_tables(managed: bool, config: Config, schemas: list[FeatureSchema]) -> None:
    """Before the job is submitted, the PostgreSQL tables must be what the feature SQL needs: a
    missing one would fail every flush and restart the job forever. Locally they are created (the
    migration `migrate` runs); in the cloud, changing production tables is left to an explicit
    `migrate`. Changes migrate refuses stop both."""
    create = not in_the_cloud(managed, config)
    try:
        with connection.jdbc_connection(config, credentials.jdbc_password(config)) as database:
            changes = tables.migrate(database, schemas, dry_run=not create)
    except connection.DatabaseUnavailable as error:
        log.warning("%s; tables not checked: the job starts and its PostgreSQL sinks retry", error)
        return
    if changes and create:
        log.info("created in PostgreSQL (as `migrate` would): %s", tables.missing(changes))
    elif changes:
        raise tables.MigrationError(f"PostgreSQL at {connection.database_name(config)} lacks {tables.missing(changes)}: "
                                    "run `python -m jobs.feature_job migrate --config FILE` first")
