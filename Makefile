# The two commands a new user needs:  make demo   (run it all locally)   make test   (the test suite)
# Both install what they need first (Python packages, the Maven-built connector jar).
PYTHON ?= python3
JAR := target/pyflink-dependencies.jar
STAMP := target/.requirements-installed
SERVICES_STAMP := target/.services-installed

.PHONY: setup jar test test-unit validate explain demo demo-stop clean

setup: $(STAMP) $(JAR) $(SERVICES_STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	@mkdir -p target && touch $@

# PostgreSQL server binaries for the local services (apt-get; needs root or sudo once).
$(SERVICES_STAMP): deploy/local/install.sh
	bash deploy/local/install.sh --no-pip
	@mkdir -p target && touch $@

# The shaded connector jar (+ the S3 filesystem plugin), rebuilt when the pom changes.
jar: $(JAR)
$(JAR): deploy/pom.xml
	mvn -q -B -f deploy/pom.xml package
	@touch $@

# Everything locally and live: services, the job in the background, sample events, the outputs.
# Options go in DEMO_ARGS, e.g. make demo DEMO_ARGS="--seconds 120".
demo: setup
	$(PYTHON) -m deploy.local demo $(DEMO_ARGS)

# Stop the demo's job (`python -m deploy.local down` stops it and the services).
demo-stop:
	$(PYTHON) -m deploy.local stop-job

test: setup
	$(PYTHON) -m pytest

test-unit: $(STAMP)
	$(PYTHON) -m pytest tests/unit

validate: setup
	$(PYTHON) -m jobs.feature_job validate --config deploy/config/local.json

explain: setup
	$(PYTHON) -m jobs.feature_job explain --config deploy/config/local.json

clean:
	rm -rf target .local
