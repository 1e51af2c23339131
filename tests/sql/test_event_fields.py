"""EVENT_FIELDS (sql/functions/event_fields.sql, Java in deploy/src) changes nothing but speed:
its fields are what JSON_VALUE(payload, '$.<field>') gives, and the `events` view built on it is,
record by record, what the parse it replaced gave. Compared in Flink itself over the oracle's
malformed records, generated events, and the corner cases of JSON and of the time rule."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.definitions import config as job_config
from jobs.definitions.sql_catalog import load_catalog
from jobs.streaming import environment
from tests.perf.throughput import parse_before
from tests.sql.test_backfill_oracle import MALFORMED, generate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config" / "local.json"
FIELDS = ("txid", "user_id", "event_type", "amount", "event_time")  # as JSON_VALUE gives them

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


TIMES = ["2026-01-01T00:10:00Z", "2026-01-01T00:10:00.1Z", "2026-01-01T00:10:00.123456789Z",
         "2026-01-01T00:10:00.9999Z", "2024-02-29T12:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
         "2100-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-31T23:59:59.999Z",
         "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-01T24:00:00Z",
         "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:10:00.Z", "2026-01-01T00:10:00.1234567890Z",
         "2026-01-01t00:10:00z", "2026-01-01T00:10:00+00:00", "2026-1-01T00:10:00Z", " 2026-01-01T00:10:00Z",
         "1767225605123", "0", "999999999999999", "1000000000000000", "-1767225605123", "17672256.05123",
         "1767225605123 ", "١٧٦٧", "", "now"]


def test_the_events_view_is_what_it_was_before(tmp_path):
    """The shipped parse against the one it replaced (tests/perf/before/: JSON_VALUE per field and
    the time rule in SQL): every column of `events`, reject reason included, record by record."""
    times = [json.dumps({"txid": f"x-{n}", "user_id": "u-1", "event_type": "A", "event_time": time})
             for n, time in enumerate(TIMES)]
    numbers = [json.dumps({"txid": "n", "user_id": "u-1", "event_type": "A", "event_time": 1767225605123 + n})
               .replace(f"{1767225605123 + n}", text) for n, text in enumerate(["1.767225605123E12", "1767225605123.0", "-0", "1e3"])]
    payloads = [payload for payload in MALFORMED + CORNERS + times + numbers  # a file holds one per line
                if "\n" not in payload and "\r" not in payload] + [
        line for line in generate(seed=6, events=300, users=7, duplicate_share=0.1) if line.strip()]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(payloads) + "\n", encoding="utf-8")
    config = job_config.load(CONFIG, "backfill").with_overrides({"backfill": {"input.path": events.as_uri()}})
    catalog = load_catalog(ROOT / "sql", "file", config)
    columns = "payload, txid, user_id, event_type, amount, CAST(event_time AS STRING), reject_reason"

    def rows(definitions) -> list[tuple]:
        t_env = environment.create(config, managed=False, streaming_source=False)
        for statement in definitions:
            t_env.execute_sql(statement.text)
        with t_env.execute_sql(f"SELECT {columns} FROM events").collect() as results:
            return sorted((tuple(row) for row in results), key=repr)

    now = rows(catalog.definitions)
    before = rows(parse_before(catalog, config).definitions)
    assert len(now) == len(payloads)
    assert [row for row in now if row not in before] == []
    assert now == before
    assert {row[-1] for row in now} >= {None, "unparseable event_time", "not a JSON object"}
