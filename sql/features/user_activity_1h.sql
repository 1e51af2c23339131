-- user_activity_1h: each user's activity per clock hour (UTC).
-- Window: TUMBLE 1 hour, event time, per user_id.
SELECT
  user_id,
  window_start,
  window_end,
  COUNT(*) AS event_count,                                      -- events (each txid once)
  COUNT(*) FILTER (WHERE event_type = 'A') AS a_event_count,    -- events of type A
  COALESCE(SUM(amount), 0.0) AS amount_sum,                     -- total amount; 0.0 when none
  MAX(amount) AS amount_max,                                    -- largest amount; NULL when none
  COUNT(DISTINCT event_type) AS distinct_event_types            -- how many different types
FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY user_id, window_start, window_end
