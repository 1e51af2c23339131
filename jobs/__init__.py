"""The feature pipeline's Python, one package per concern; imports only go down this list.

- definitions: what the features are: config, the SQL catalog, feature specs, replay cut-overs.
- postgres:    the online store's connection, tables and credentials.
- streaming:   the Flink job that writes features (environment, pipeline, sinks, fingerprint).
- reads:       features for inference (serving) and training (training, point in time, fresh).
- operations:  running the job over time: start, migrate, upgrade.
- backfill:    the same SQL over archived files.

feature_job.py is the command line over all of them; managed_flink_main.py is Managed Flink's entry.
"""
