-- Valid events that arrived behind the watermark (event_time <= watermark): counted in no feature,
-- kept here whole, by the UTC hour they arrived, with the watermark they missed. Duplicates are
-- not removed here. A correction recomputes the affected windows from the raw archive (README).
CREATE TEMPORARY TABLE late_events (
  payload STRING,
  event_time TIMESTAMP(3),
  missed_watermark TIMESTAMP(3),
  arrival_time TIMESTAMP(3),
  shard_id STRING,
  sequence_number STRING,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = '${output.path}/_late',
  'format' = 'parquet',
  'parquet.utc-timezone' = 'true',
  'parquet.write.int64.timestamp' = 'true',
  'parquet.timestamp.time.unit' = 'millis'
);

INSERT INTO late_events
SELECT payload, CAST(event_time AS TIMESTAMP(3)), CAST(CURRENT_WATERMARK(event_time) AS TIMESTAMP(3)),
       CAST(arrival_time AS TIMESTAMP(3)), shard_id, sequence_number,
       DATE_FORMAT(arrival_time, 'yyyyMMdd'), DATE_FORMAT(arrival_time, 'HH')
FROM events
WHERE reject_reason IS NULL AND event_time <= CURRENT_WATERMARK(event_time)
