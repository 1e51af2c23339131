-- user_spend_buckets_1h (example, not shipped: it calls a Python UDF, which costs throughput).
-- Copy it into sql/features/ to enable it. Per user and clock hour (UTC): how many events fell
-- into each spend bucket of udfs/spend_bucket.py.
SELECT
  user_id,
  window_start,
  window_end,
  COUNT(*) FILTER (WHERE bucket = 'small') AS small_spend_count,    -- amount < 10
  COUNT(*) FILTER (WHERE bucket = 'medium') AS medium_spend_count,  -- 10 <= amount < 100
  COUNT(*) FILTER (WHERE bucket = 'large') AS large_spend_count     -- amount >= 100
FROM (
  SELECT user_id, window_start, window_end, spend_bucket(amount) AS bucket
  FROM TABLE(TUMBLE(TABLE events_deduped, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
)
GROUP BY user_id, window_start, window_end
