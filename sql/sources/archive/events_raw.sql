-- Raw records replayed from the raw archive (sinks/kinesis/raw_archive.sql): the payload and the
-- arrival time Kinesis gave it. The backfill command sorts the archive by arrival first.
CREATE TEMPORARY TABLE events_raw (
  payload STRING,
  arrival_time TIMESTAMP_LTZ(3),
  shard_id STRING,
  sequence_number STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${backfill.input.path}',
  'format' = 'parquet',
  'parquet.utc-timezone' = 'true'
)
