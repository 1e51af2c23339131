-- Every Kinesis record exactly as received (valid or not, duplicates included), partitioned by
-- the UTC hour it arrived: the audit copy that corrections and backfills replay in arrival order
-- (`python -m jobs.feature_job backfill --input <this folder>`). Only the live job writes it.
CREATE TEMPORARY TABLE raw_archive (
  payload STRING,
  arrival_time TIMESTAMP_LTZ(3),
  shard_id STRING,
  sequence_number STRING,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = '${output.path}/_raw',
  'format' = 'parquet',
  'parquet.utc-timezone' = 'true',
  'parquet.write.int64.timestamp' = 'true',
  'parquet.timestamp.time.unit' = 'millis',
  -- An arrival hour is complete once that hour has passed on the clock; mark it with _SUCCESS.
  'sink.partition-commit.trigger' = 'process-time',
  'sink.partition-commit.delay' = '1 h',
  'sink.partition-commit.policy.kind' = 'success-file',
  'auto-compaction' = 'true'
);

INSERT INTO raw_archive
SELECT payload, arrival_time, shard_id, sequence_number,
       DATE_FORMAT(arrival_time, 'yyyyMMdd'), DATE_FORMAT(arrival_time, 'HH')
FROM events
