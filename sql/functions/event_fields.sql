-- EVENT_FIELDS(payload): the event's fields txid, user_id, event_type, amount and event_time,
-- each exactly what JSON_VALUE(payload, '$.<field>') returns, and event_time_ms: the time by the
-- contract's time rule (sources/events_parsed.sql), NULL if it has none; all from one parse of
-- the payload (JSON_VALUE parses the whole payload on every call). Validity, the watermark and
-- the reject reasons are in sources/events_parsed.sql and views/events.sql. Java, in the job's
-- jar: deploy/src/main/java/com/example/features/udf/EventFields.java and EventTime.java.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS EVENT_FIELDS AS 'com.example.features.udf.EventFields' LANGUAGE JAVA
