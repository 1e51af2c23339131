-- user_activity_5m: what each user did in the last 5 minutes, refreshed every minute.
-- Window: HOP, slide 1 minute, size 5 minutes, event time, per user_id.
SELECT
  user_id,
  window_start,
  window_end,
  COUNT(*) AS event_count,                                      -- events (each txid once)
  COUNT(*) FILTER (WHERE event_type = 'A') AS a_event_count,    -- events of type A
  COALESCE(SUM(amount), 0.0) AS amount_sum                      -- total amount; 0.0 when none
FROM TABLE(HOP(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))
GROUP BY user_id, window_start, window_end
