# The two commands a new user needs:  make demo   (run it all locally)   make test   (the test suite)
# Both install what they need first (Python packages, the Maven-built connector jar).
PYTHON ?= python3
JAR := target/pyflink-dependencies.jar
STAMP := target/.requirements-installed
SERVICES_STAMP := target/.services-installed

.PHONY: setup jar test test-unit validate explain demo demo-stop bench clean

setup: $(STAMP) $(JAR) $(SERVICES_STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	@mkdir -p target && touch $@

# PostgreSQL server binaries for the local services (apt-get; needs root or sudo once).
$(SERVICES_STAMP): deploy/local/install.sh
	bash deploy/local/install.sh --no-pip
	@mkdir -p target && touch $@

# The shaded connector jar (+ the S3 filesystem plugin), rebuilt when the pom or deploy/src changes.
jar: $(JAR)
$(JAR): deploy/pom.xml $(shell find deploy/src -type f)
	mvn -q -B -f deploy/pom.xml package
	@touch $@

# Everything locally and live: services, the job in the background, sample events, the outputs.
# Options go in DEMO_ARGS, e.g. make demo DEMO_ARGS="--seconds 120".
demo: setup
	$(PYTHON) -m deploy.local demo $(DEMO_ARGS)

# Stop the demo's job (`python -m deploy.local down` stops it and the services).
demo-stop:
	$(PYTHON) -m deploy.local stop-job

# Test modules run side by side in TEST_WORKERS processes (pytest-xdist; the tests of one module
# stay together, sharing its services and jobs), taken in the order tests/conftest.py gives. The
# suite is mostly bound by CPU (the jobs' JVMs), but several modules wait on the clock (live
# producers, minute windows): with 2 workers on 2 cores the CPU was idle 17% of the run, and 3
# workers took 10% less time in the same hour. TEST_WORKERS=0 runs everything in this process.
# Real LocalStack (its own Python 3.13 venv and kinesis-mock from npm, ~45 s once) is installed by
# its test module on first use, while the other workers run other tests; without Python 3.13 or
# npm those tests skip, saying why (in CI they fail).
TEST_WORKERS ?= 3
test: setup
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-unit: $(STAMP)
	$(PYTHON) -m pytest tests/unit

validate: setup
	$(PYTHON) -m jobs.feature_job validate --config deploy/config/local.json

explain: setup
	$(PYTHON) -m jobs.feature_job explain --config deploy/config/local.json

# Performance figures, printed and written to target/perf/report.md: throughput, then end to end
# (the job and two baselines through the local Kinesis endpoint into PostgreSQL and S3). About 18 min;
# options in BENCH_ARGS: --full (every variant and lever, about 2 h), --quick (a smoke run of a few minutes).
bench: setup
	$(PYTHON) -m tests.perf $(BENCH_ARGS)

# The packaged zip on a local Flink cluster run the Managed Flink way (deploy/local/cluster.py): a
# JobManager and 2 TaskManagers (RocksDB, checkpoints in the local S3), the zip submitted with the
# service's run options, sample events. Web UI http://localhost:18081; stop:
# python -m deploy.local cluster down --config deploy/config/cluster.json
CLUSTER_CONFIG ?= deploy/config/cluster.json
.PHONY: cluster
cluster: setup
	$(PYTHON) -m deploy.local cluster up --config $(CLUSTER_CONFIG)
	$(PYTHON) -m deploy.local cluster submit --config $(CLUSTER_CONFIG)
	$(PYTHON) -m deploy.local generate --out target/cluster-events.jsonl
	$(PYTHON) -m deploy.local produce --events target/cluster-events.jsonl --config $(CLUSTER_CONFIG)
	$(PYTHON) -m deploy.local cluster status --config $(CLUSTER_CONFIG)

# Managed Service for Apache Flink (python -m deploy.managed_flink): the application zip, and the
# requests a deploy would send (read-only look-ups only when AWS credentials are present).
DEPLOY_CONFIG ?= deploy/config/aws.example.json
.PHONY: package deploy-dry-run

package: $(STAMP) $(JAR)
	$(PYTHON) -m deploy.managed_flink package

deploy-dry-run: $(STAMP) $(JAR)
	$(PYTHON) -m deploy.managed_flink deploy --config $(DEPLOY_CONFIG) --dry-run

clean:
	rm -rf target .local
