-- The parse before EVENT_FIELDS (sql/functions/event_fields.sql), unchanged: JSON_VALUE per field and
-- the time rule in SQL. Kept as the throughput benchmark's baseline and as the reference
-- tests/sql/test_event_fields.py checks the shipped parse against, record by record.
-- Every raw record with its fields pulled out and its event time: the table that carries the
-- watermark. A watermark can only be declared on a table, and it must know whether a record is
-- valid: a malformed record's time must never move it, or good events behind it would be
-- dropped as late. One scan of this table feeds every feature and sink; `events`
-- (views/events.sql) adds the amount as a number and the reject reason.
--
-- Event contract: {"txid": "t-1", "user_id": "u-42", "event_type": "A",
--                   "event_time": "2026-01-01T00:00:05.123Z" or 1767225605123, "amount": 12.5}
--   event_time: epoch milliseconds, or ISO-8601 UTC ending in Z (digits past milliseconds are
--   truncated); ids are taken as text; amount is a number, null or absent.
--
-- Speed: JSON_VALUE parses the whole payload on every call, and a computed column cannot read
-- another computed column, so every mention of a field is one more parse. Each field is read
-- once here (event_time twice), six parses per record; the watermark and `events` only read
-- these columns. Empty ids stay '' here (NULLIF would parse twice); validity tests `<> ''`.
CREATE TEMPORARY TABLE events_parsed (
  txid AS JSON_VALUE(payload, '$.txid'),
  user_id AS JSON_VALUE(payload, '$.user_id'),
  event_type AS JSON_VALUE(payload, '$.event_type'),
  amount_text AS JSON_VALUE(payload, '$.amount'),
  -- ISO-8601 with Z whose date exists (the pattern spells out days per month and Feb 29 in leap
  -- years: TRY_CAST alone would turn Feb 30 into Feb 28), else epoch milliseconds of up to 15
  -- digits. REGEXP caches its compiled pattern; REGEXP_EXTRACT compiles on every call, so it only
  -- gets the short epoch pattern. A record without a usable time gets 0000-12-31 23:59:59.999,
  -- earlier than any valid time: it marks the time unparseable and can never move the watermark
  -- (a rowtime must not be NULL).
  event_time AS COALESCE(
    CASE
      WHEN REGEXP(JSON_VALUE(payload, '$.event_time'),
        '^(?:[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?Z\z')
        THEN CAST(TRY_CAST(REPLACE(REPLACE(JSON_VALUE(payload, '$.event_time'), 'T', ' '), 'Z', '') AS TIMESTAMP(3)) AS TIMESTAMP_LTZ(3))
      ELSE TO_TIMESTAMP_LTZ(CAST(REGEXP_EXTRACT(JSON_VALUE(payload, '$.event_time'), '^[0-9]{1,15}\z', 0) AS BIGINT), 3)
    END,
    TO_TIMESTAMP_LTZ(-62135596800001, 3)),
  proc_time AS PROCTIME(),
  -- Only a valid record moves the watermark (NULL never does). The same test as `events`'
  -- reject_reason IS NULL (views/events.sql): keep the two equal. A valid event may be dated up
  -- to the future skew after its arrival (a fast client clock); it counts as of its arrival here,
  -- so the watermark never runs ahead of what has arrived and cannot make others' events late.
  WATERMARK FOR event_time AS
    CASE WHEN txid <> '' AND user_id <> '' AND event_type <> ''
          AND (amount_text IS NULL OR TRY_CAST(amount_text AS DOUBLE) IS NOT NULL)
          AND event_time > TO_TIMESTAMP_LTZ(-62135596800001, 3)
          AND event_time <= TIMESTAMPADD(SECOND, ${events.future.skew.seconds}, arrival_time)
      THEN TIMESTAMPADD(SECOND, -${events.watermark.delay.seconds}, LEAST(event_time, arrival_time)) END
) LIKE events_raw
