"""EVENT_FIELDS (sql/functions/event_fields.sql, Java in deploy/src) gives, from one parse, what
JSON_VALUE(payload, '$.<field>') gives: compared in Flink itself, field by field, over the oracle's
malformed records, generated events and JSON's corner cases."""

from __future__ import annotations

from pathlib import Path

from jobs import config as job_config
from jobs import environment
from jobs.sql_catalog import load_catalog
from tests.sql.test_backfill_oracle import MALFORMED, generate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
FIELDS = ("txid", "user_id", "event_type", "amount", "event_time")

CORNERS = [
    '{"txid": 7, "user_id": true, "event_type": false, "amount": 12.50, "event_time": 1767225605123}',
    '{"txid": 1e3, "user_id": -0.0, "event_type": 0.1, "amount": 1E400, "event_time": 1.7672256051230E12}',
    '{"txid": 123456789012345678901234567890, "amount": -12, "event_time": 2147483648}',
    '{"txid": null, "user_id": {"id": 1}, "event_type": ["A"], "amount": {}, "event_time": []}',
    '{"txid": "first", "txid": "second", "user_id": "u", "user_id": {"x": 1}}',
    '{"txid": "t-1"} trailing text',
    '{"txid": "t-1"}{"txid": "t-2"}',
    '{"txid": "t-\\u00e9\\n\\"q\\"", "user_id": "\\ud83d\\ude00", "event_type": "\\/"}',
    '{"tx\\u0069d": "escaped key", "TXID": "upper", "": "empty key"}',
    '{"nested": {"txid": "inner"}, "list": [{"txid": "in list"}]}',
    '{"txid": "t-1", "broken": {"a": }}',
    '{"txid": "t-1", "amount": NaN}',
    '{"txid": "t-1" /* comment */}',
    "{'txid': 't-1'}",
    '{txid: "t-1"}',
    '{"txid": 01}',
    '{"txid": "raw\tcontrol"}',
    '\ufeff{"txid": "after a BOM"}',
    '  \n {"txid": "spaced"} \n ',
    '{"txid": "t-1",}',
    "null", "42", '"t-1"', "true", "{}", "[]", "{", "}", " ",
    '{"txid": "' + "x" * 5000 + '", "user_id": "long"}',
]


def test_every_field_is_what_json_value_gives():
    config = job_config.load(CONFIG, "backfill").with_overrides({"backfill": {"input.path": "file:///unused"}})
    t_env = environment.create(config, managed=False, streaming_source=False)
    for statement in load_catalog(ROOT / "sql", "file", config).functions:
        t_env.execute_sql(statement.text)
    payloads = MALFORMED + CORNERS + [line for line in generate(seed=5, events=300, users=7, duplicate_share=0.1)
                                      if line.strip()]
    rows = ", ".join("(" + "'" + payload.replace("'", "''") + "')" for payload in payloads)
    pairs = ", ".join(f"JSON_VALUE(p, '$.{name}'), EVENT_FIELDS(p).{name}" for name in FIELDS)
    with t_env.execute_sql(f"SELECT p, {pairs} FROM (VALUES {rows}) AS t(p)").collect() as results:
        seen = [tuple(row) for row in results]
    assert len(seen) == len(payloads)
    differences = [(row[0], name, row[1 + 2 * i], row[2 + 2 * i])
                   for row in seen for i, name in enumerate(FIELDS) if row[1 + 2 * i] != row[2 + 2 * i]]
    assert differences == []
    assert sum(1 for row in seen if row[1] is not None) > 300  # most carry a txid: the values were compared
