import json
from pathlib import Path

import pytest

from jobs.definitions.config import ConfigError, load, parse_property_groups, validate

LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "config" / "local.json"


def groups(**overrides):
    base = parse_property_groups(LOCAL.read_text(), "local.json")
    for dotted, value in overrides.items():
        group, key = dotted.split("__", 1)
        key = key.replace("_", ".")
        if value is None:
            base[group].pop(key, None)
        else:
            base.setdefault(group, {})[key] = value
    return base


def test_shipped_local_config_is_valid_for_every_command():
    for command in ("run", "validate", "explain", "backfill"):
        config = load(LOCAL, command)
        assert config.get("events", "watermark.delay.seconds") == "30"


def test_defaults_and_derived_keys():
    config = validate(groups(events__dedup_ttl_hours=None), "run", "x.json")
    assert config.get("events", "dedup.ttl.hours") == "24"
    assert config.get("source", "stream.name") == "user-events"


def test_default_endpoint_is_the_regions_aws_endpoint():
    config = validate(groups(source__aws_endpoint=""), "run", "x.json")
    assert config.get("source", "aws.endpoint") == "https://kinesis.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"events__watermark_delay_seconds": "thirty"}, "property group 'events' key 'watermark.delay.seconds': must be a non-negative integer"),
        ({"rds__jdbc_url": None}, "property group 'rds' key 'jdbc.url': missing"),
        ({"source__stream_arn": "user-events"}, "property group 'source' key 'stream.arn': must be a Kinesis stream ARN"),
        ({"source__init_position": "EARLIEST"}, "property group 'source' key 'init.position': must be one of"),
        ({"source__aws_region": "eu-west-1"}, "differs from the region in stream.arn"),
        ({"source__init_position": "AT_TIMESTAMP"}, "key 'init.timestamp': required when init.position is AT_TIMESTAMP"),
        ({"events__watermark_delay": "30"}, "property group 'events' key 'watermark.delay': unknown key"),
    ],
)
def test_bad_values_name_group_and_key(override, message):
    with pytest.raises(ConfigError, match="x.json") as error:
        validate(groups(**override), "run", "x.json")
    assert message in str(error.value)


def test_backfill_needs_no_connection_settings():
    only_events = [{"PropertyGroupId": "events", "PropertyMap": {}}]
    config = validate(parse_property_groups(json.dumps(only_events), "x"), "backfill", "x")
    assert config.get("job", "parallelism") == "1"


def test_unknown_groups_are_left_alone():
    data = groups()
    data["kinesis.analytics.flink.run.options"] = {"python": "jobs/managed_flink_main.py"}
    validate(data, "run", "x.json")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"PropertyMap": {}}]', "needs a string PropertyGroupId"),
        ('[{"PropertyGroupId": "events", "PropertyMap": {"dedup.ttl.hours": 24}}]', "key 'dedup.ttl.hours': values must be strings"),
        ('[{"PropertyGroupId": "a"}, {"PropertyGroupId": "a"}]', "'a' appears twice"),
    ],
)
def test_malformed_files(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_property_groups(text, "x.json")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "absent.json", "run")


def test_start_timestamp_is_passed_as_epoch_seconds():
    config = validate(groups(source__init_position="AT_TIMESTAMP", source__init_timestamp="2026-01-01T00:00:01.500Z"),
                      "run", "x.json")
    assert config.get("source", "init.timestamp.seconds") == "1767225601.500"
