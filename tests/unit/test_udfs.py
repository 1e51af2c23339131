import pytest

import udfs
from udfs.spend_bucket import bucket_of


@pytest.mark.parametrize("amount, bucket", [(None, "none"), (0.0, "small"), (9.99, "small"), (10.0, "medium"),
                                            (99.9, "medium"), (100.0, "large"), (-5.0, "small")])
def test_spend_bucket(amount, bucket):
    assert bucket_of(amount) == bucket


def test_udfs_are_discovered_by_name():
    assert "spend_bucket" in udfs.discover()


class FakeTableEnvironment:
    def __init__(self):
        self.functions = {}

    def create_temporary_system_function(self, name, function):
        self.functions[name] = function


def test_register_all_registers_every_udf():
    t_env = FakeTableEnvironment()
    assert udfs.register_all(t_env) == list(udfs.discover())
    assert "spend_bucket" in t_env.functions
