"""``backfill``: the job's SQL over bounded input (JSON lines or the raw archive) into Parquet (and,
with --to-postgres, PostgreSQL), writing only the windows the input covers completely."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from jobs.backfill import complete_windows, input_file
from jobs.definitions.config import Config, ConfigError
from jobs.definitions.feature_specs import load_specs
from jobs.definitions.sql_catalog import Catalog, load_catalog
from jobs.postgres import credentials
from jobs.streaming import environment, pipeline


def backfill(args: argparse.Namespace, config: Config) -> int:
    if not args.input.exists():
        raise ConfigError(f"--input {args.input}: no such file or folder")
    password = None
    if args.to_postgres:
        if "rds" not in config.groups:
            raise ConfigError(f"{config.origin}: backfill --to-postgres needs property group 'rds'")
        password = credentials.sink_password(config)
    specs = None if args.include_partial_windows else load_specs(args.sql_dir, config)
    output_root = _backfill_output(args.output_dir)
    with tempfile.TemporaryDirectory(prefix="backfill-") as scratch:
        connector, prepared = input_file.prepare(args.input, Path(scratch))
        config = config.with_overrides({
            "backfill": {"input.path": prepared.resolve().as_uri()},
            "output": {"path": output_root},
        })
        # Parallelism 1: records are processed in file order, so the outcome is deterministic.
        t_env = environment.create(config, managed=False, streaming_source=False, parallelism=1)
        catalog = _only_features(load_catalog(args.sql_dir, connector, config), args.feature)
        span = None if specs is None else complete_windows.measure(catalog)
        windows = (complete_windows.WindowRange(args.write_from, None) if span is None
                   else complete_windows.complete_range(span, connector, config, args.write_from))
        if args.until:
            windows = dataclasses.replace(windows, end=min(filter(None, (windows.end, args.until))))
        built = pipeline.build(t_env, catalog, config, output_root=output_root, jdbc_password=password,
                               streaming_commit=False, only_windows=windows.condition())
        built.statement_set.execute().wait()
    shown = args.output_dir.rstrip("/")
    for feature in built.features:
        print(f"{feature.name}: {shown}/{feature.name}")
    if catalog.sinks:
        print(f"quarantine: {shown}/_quarantine")
    if windows.condition():
        print(f"windows written: {windows.condition()}")
    if span is not None:
        for feature in built.features:
            print(complete_windows.report(specs[feature.name], span, windows))
    if args.to_postgres:
        print(f"upserted into PostgreSQL: {', '.join(f.name for f in built.features)}")
    return 0


def _backfill_output(text: str) -> str:
    """The output root as the filesystem connector wants it: s3:// as given, a folder as file://."""
    if text.startswith(("s3://", "s3a://")):
        return text.rstrip("/")
    folder = Path(text)
    folder.mkdir(parents=True, exist_ok=True)
    return pipeline.sink_root(folder)


def _only_features(catalog: Catalog, names: list[str] | None) -> Catalog:
    """The catalog with only the named feature groups, and without the fixed outputs."""
    if not names:
        return catalog
    known = {feature.name for feature in catalog.features}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(f"--feature {', '.join(unknown)}: no such feature group (known: {', '.join(sorted(known))})")
    return dataclasses.replace(catalog, features=[f for f in catalog.features if f.name in names], sinks=[])
