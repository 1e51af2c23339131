-- Valid, on-time events, each txid once: the first delivery wins and later re-sends (producer or
-- Lambda retries) are dropped. Ordered by processing time, so a row is emitted the moment it
-- arrives and the output is insert-only (README: "Dedup: why processing-time order"). The txid
-- state is bounded by events.dedup.ttl.hours (table.exec.state.ttl; the STATE_TTL hint is not
-- honoured here). An event already behind the watermark when it arrives is late: it counts in no
-- feature and goes to the late output instead (sinks/late_events.sql).
CREATE TEMPORARY VIEW events_deduped AS
SELECT txid, user_id, event_type, amount, event_time
FROM (
  SELECT txid, user_id, event_type, amount, event_time,
         ROW_NUMBER() OVER (PARTITION BY txid ORDER BY proc_time ASC) AS delivery
  FROM events
  WHERE reject_reason IS NULL
    AND (CURRENT_WATERMARK(event_time) IS NULL OR event_time > CURRENT_WATERMARK(event_time))
)
WHERE delivery = 1
