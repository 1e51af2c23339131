"""Integration tests share the local services; stop them afterwards only if the tests started them."""

import pytest

from deploy.local import config as local_config
from deploy.local import services
from deploy.local.state import DEFAULT_STATE


@pytest.fixture(scope="session", autouse=True)
def local_services():
    settings = local_config.load(local_config.DEFAULT_CONFIG)
    before = services.status(settings, DEFAULT_STATE)
    already_running = before.postgres.kind != "down" and all(e.kind != "down" for e in before.endpoints)
    yield
    if not already_running:
        services.down(settings, DEFAULT_STATE)
