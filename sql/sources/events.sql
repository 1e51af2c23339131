-- Every raw record, parsed in computed columns. Parsing here (not in a view) is what lets the
-- watermark ignore malformed records: a bad record's time must never move it, or good events
-- behind it would be dropped as late. One scan of this table feeds every feature and sink.
--
-- Event contract: {"txid": "t-1", "user_id": "u-42", "event_type": "A",
--                   "event_time": "2026-01-01T00:00:05.123Z" or 1767225605123, "amount": 12.5}
--   event_time: epoch milliseconds, or ISO-8601 UTC ending in Z (digits past milliseconds are
--   truncated); ids are taken as text; amount is a number, null or absent.
-- reject_reason is NULL for a valid event, otherwise why the record goes to quarantine.
--
-- Flink lets a computed column read only physical and metadata columns, never another computed
-- column, so the event_time parse is spelled out twice (event_time and reject_reason). A valid
-- ISO time must survive a round trip: TRY_CAST clamps impossible dates (Feb 30 becomes Feb 28).
CREATE TEMPORARY TABLE events (
  txid AS NULLIF(JSON_VALUE(payload, '$.txid'), ''),
  user_id AS NULLIF(JSON_VALUE(payload, '$.user_id'), ''),
  event_type AS NULLIF(JSON_VALUE(payload, '$.event_type'), ''),
  amount AS TRY_CAST(JSON_VALUE(payload, '$.amount') AS DOUBLE),
  -- A record without a usable time gets its arrival time: a rowtime is never NULL. Such a record
  -- is quarantined and, through the watermark's CASE, never moves the watermark.
  event_time AS COALESCE(
    CASE
      WHEN REGEXP(JSON_VALUE(payload, '$.event_time'), '^[0-9]{1,15}$')
        THEN TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(payload, '$.event_time') AS BIGINT), 3)
      WHEN REGEXP(JSON_VALUE(payload, '$.event_time'), '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?Z$')
       AND DATE_FORMAT(TRY_CAST(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', '') AS TIMESTAMP(3)), 'yyyy-MM-dd HH:mm:ss')
           = SUBSTR(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', ''), 1, 19)
        THEN CAST(TRY_CAST(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', '') AS TIMESTAMP(3)) AS TIMESTAMP_LTZ(3))
    END,
    arrival_time),
  reject_reason AS CASE
    WHEN payload IS NOT JSON OBJECT THEN 'not a JSON object'
    WHEN NULLIF(JSON_VALUE(payload, '$.txid'), '') IS NULL THEN 'missing or empty txid'
    WHEN NULLIF(JSON_VALUE(payload, '$.user_id'), '') IS NULL THEN 'missing or empty user_id'
    WHEN NULLIF(JSON_VALUE(payload, '$.event_type'), '') IS NULL THEN 'missing or empty event_type'
    WHEN JSON_VALUE(payload, '$.event_time') IS NULL THEN 'missing event_time'
    WHEN JSON_VALUE(payload, '$.amount') IS NOT NULL
     AND TRY_CAST(JSON_VALUE(payload, '$.amount') AS DOUBLE) IS NULL THEN 'amount is not a number'
    -- arrival_time is never NULL, so UNKNOWN here means the time did not parse.
    ELSE CASE (
      CASE
        WHEN REGEXP(JSON_VALUE(payload, '$.event_time'), '^[0-9]{1,15}$')
          THEN TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(payload, '$.event_time') AS BIGINT), 3)
        WHEN REGEXP(JSON_VALUE(payload, '$.event_time'), '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?Z$')
         AND DATE_FORMAT(TRY_CAST(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', '') AS TIMESTAMP(3)), 'yyyy-MM-dd HH:mm:ss')
             = SUBSTR(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', ''), 1, 19)
          THEN CAST(TRY_CAST(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', '') AS TIMESTAMP(3)) AS TIMESTAMP_LTZ(3))
      END > TIMESTAMPADD(SECOND, ${events.future.skew.seconds}, arrival_time))
      WHEN TRUE THEN 'event_time more than ${events.future.skew.seconds} s after arrival'
      WHEN FALSE THEN CAST(NULL AS STRING)
      ELSE 'unparseable event_time'
    END
  END,
  proc_time AS PROCTIME(),
  WATERMARK FOR event_time AS
    CASE WHEN reject_reason IS NULL THEN TIMESTAMPADD(SECOND, -${events.watermark.delay.seconds}, event_time) END
) LIKE events_raw
