"""Ship the feature job to Amazon Managed Service for Apache Flink: package, deploy, operate.

  python -m deploy.managed_flink package                                   build target/<name>-<version>.zip
  python -m deploy.managed_flink deploy --config FILE [--dry-run]           upload + create or update the app
  python -m deploy.managed_flink start  --config FILE [--snapshot latest|none|NAME] [--allow-non-restored-state]
  python -m deploy.managed_flink stop   --config FILE [--force]
  python -m deploy.managed_flink status --config FILE
  python -m deploy.managed_flink iam    --config FILE [--out-dir DIR]       the application role's policies
  python -m deploy.managed_flink athena --config FILE [--out-dir DIR]       Glue/Athena DDL per feature

One module per job: settings (config file -> what to deploy), package (the zip), plan (the API
requests), aws (running or printing them), operate (start/stop/status), iam, athena.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The application artifact: target/<APP_NAME>-<version>.zip, version from deploy/pom.xml.
APP_NAME = "feature-pipeline"

# The jar is built for Flink 1.20 (deploy/pom.xml), so the runtime is fixed, not configurable.
RUNTIME_ENVIRONMENT = "FLINK-1_20"

# What Managed Flink runs, as paths inside the zip (the `kinesis.analytics.flink.run.options` group).
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"
PYTHON_ENTRY = "jobs/managed_flink_main.py"
JAR_FILE = "lib/pyflink-dependencies.jar"
PY_FILES = "lib/python"  # bundled pure-Python dependencies (+ udfs for the UDF workers)

# The config file's group that holds deploy-only settings; never sent as a runtime property.
DEPLOY_GROUP = "deploy"
