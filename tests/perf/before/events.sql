-- The parse before EVENT_FIELDS (sql/functions/event_fields.sql), unchanged: JSON_VALUE per field and
-- the time rule in SQL. Kept as the throughput benchmark's baseline and as the reference
-- tests/sql/test_event_fields.py checks the shipped parse against, record by record.
-- Every raw record, parsed (sources/events_parsed.sql), with its amount and why it is rejected:
-- reject_reason is NULL for a valid event, otherwise the reason it goes to quarantine. A valid
-- record costs no further parse: the reasons below are only worked out for invalid ones.
CREATE TEMPORARY VIEW events AS
SELECT payload, arrival_time, shard_id, sequence_number, proc_time, event_time,
       txid, user_id, event_type, TRY_CAST(amount_text AS DOUBLE) AS amount,
       CASE
         -- The watermark's test (sources/events_parsed.sql): keep the two equal.
         WHEN txid <> '' AND user_id <> '' AND event_type <> ''
          AND (amount_text IS NULL OR TRY_CAST(amount_text AS DOUBLE) IS NOT NULL)
          AND event_time > TO_TIMESTAMP_LTZ(-62135596800001, 3)
          AND event_time <= TIMESTAMPADD(SECOND, ${events.future.skew.seconds}, arrival_time)
           THEN CAST(NULL AS STRING)
         WHEN payload IS NOT JSON OBJECT THEN 'not a JSON object'
         WHEN COALESCE(txid, '') = '' THEN 'missing or empty txid'
         WHEN COALESCE(user_id, '') = '' THEN 'missing or empty user_id'
         WHEN COALESCE(event_type, '') = '' THEN 'missing or empty event_type'
         WHEN JSON_VALUE(payload, '$.event_time') IS NULL THEN 'missing event_time'
         WHEN amount_text IS NOT NULL AND TRY_CAST(amount_text AS DOUBLE) IS NULL THEN 'amount is not a number'
         WHEN event_time = TO_TIMESTAMP_LTZ(-62135596800001, 3) THEN 'unparseable event_time'
         ELSE 'event_time more than ${events.future.skew.seconds} s after arrival'
       END AS reject_reason
FROM events_parsed
