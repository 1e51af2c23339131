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
-- Speed: the fields come from EVENT_FIELDS (functions/event_fields.sql), which gives what
-- JSON_VALUE would, and the time, from one parse per record; JSON_VALUE parses the payload again
-- on every call, and a computed column cannot read another computed column. The watermark and
-- `events` only read these columns. Empty ids stay '' here; validity tests `<> ''`.
CREATE TEMPORARY TABLE events_parsed (
  txid AS EVENT_FIELDS(payload).txid,
  user_id AS EVENT_FIELDS(payload).user_id,
  event_type AS EVENT_FIELDS(payload).event_type,
  amount_text AS EVENT_FIELDS(payload).amount,
  -- The time rule above, in EVENT_FIELDS (deploy/src/.../EventTime.java): epoch milliseconds of
  -- up to 15 digits, or ISO-8601 ending in Z whose date exists (days per month, Feb 29 in leap
  -- years); NULL for anything else. A record without a usable time gets 0000-12-31 23:59:59.999,
  -- earlier than any valid time: it marks the time unparseable and can never move the watermark
  -- (a rowtime must not be NULL).
  event_time AS COALESCE(TO_TIMESTAMP_LTZ(EVENT_FIELDS(payload).event_time_ms, 3), TO_TIMESTAMP_LTZ(-62135596800001, 3)),
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
