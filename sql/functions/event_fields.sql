-- EVENT_FIELDS(payload): the event's fields txid, user_id, event_type, amount and event_time,
-- each exactly what JSON_VALUE(payload, '$.<field>') returns, from one parse of the payload
-- (JSON_VALUE parses the whole payload on every call). It only extracts: every rule of the event
-- contract is in sources/events_parsed.sql and views/events.sql. Java, in the job's jar:
-- deploy/src/main/java/com/example/features/udf/EventFields.java.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS EVENT_FIELDS AS 'com.example.features.udf.EventFields' LANGUAGE JAVA
