-- Counters as Flink metrics. Each blackhole sink below counts one kind of record: its operator,
-- named "Sink: counter_<what>", reports numRecordsIn (per subtask; the sum is the counter) to
-- Flink's metrics (the web UI locally, CloudWatch on Managed Flink at the OPERATOR metrics
-- level). A local `run` also logs them. Features emitted per group are the numRecordsIn of the
-- derived "Sink: <feature>__counter" operators. Duplicates dropped = on_time - deduplicated.
CREATE TEMPORARY TABLE counter_records_read (n INT) WITH ('connector' = 'blackhole');
CREATE TEMPORARY TABLE counter_malformed (n INT) WITH ('connector' = 'blackhole');
CREATE TEMPORARY TABLE counter_late (n INT) WITH ('connector' = 'blackhole');
CREATE TEMPORARY TABLE counter_on_time (n INT) WITH ('connector' = 'blackhole');
CREATE TEMPORARY TABLE counter_deduplicated (n INT) WITH ('connector' = 'blackhole');

INSERT INTO counter_records_read SELECT 1 FROM events;
INSERT INTO counter_malformed SELECT 1 FROM events WHERE reject_reason IS NOT NULL;
INSERT INTO counter_late SELECT 1 FROM events
WHERE reject_reason IS NULL AND event_time <= CURRENT_WATERMARK(event_time);
INSERT INTO counter_on_time SELECT 1 FROM events
WHERE reject_reason IS NULL AND (CURRENT_WATERMARK(event_time) IS NULL OR event_time > CURRENT_WATERMARK(event_time));
INSERT INTO counter_deduplicated SELECT 1 FROM events_deduped
