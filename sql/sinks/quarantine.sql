-- Malformed records, kept whole: the raw payload, why it was rejected, and when it arrived
-- (for files, their modification time). Nothing here is counted in a feature.
CREATE TEMPORARY TABLE quarantine (
  payload STRING,
  reason STRING,
  arrival_time TIMESTAMP(3),
  shard_id STRING,
  sequence_number STRING,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = '${output.path}/_quarantine',
  'format' = 'parquet',
  'parquet.utc-timezone' = 'true',
  'parquet.write.int64.timestamp' = 'true',
  'parquet.timestamp.time.unit' = 'millis'
);

INSERT INTO quarantine
SELECT payload, reason, seen_at, shard_id, sequence_number,
       DATE_FORMAT(seen_at, 'yyyyMMdd'), DATE_FORMAT(seen_at, 'HH')
FROM (
  SELECT payload, reject_reason AS reason, shard_id, sequence_number,
         CAST(arrival_time AS TIMESTAMP(3)) AS seen_at
  FROM events
  WHERE reject_reason IS NOT NULL
)
