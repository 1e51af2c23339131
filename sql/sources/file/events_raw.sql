-- Raw records from a JSON-lines file (one event per line), for backfills and tests. A file has no
-- per-record arrival time; its modification time stands in (for the future-dated check and the
-- quarantine's partitions).
CREATE TEMPORARY TABLE events_raw (
  payload STRING,
  arrival_time TIMESTAMP_LTZ(3) METADATA FROM 'file.modification-time' VIRTUAL,
  shard_id AS CAST(NULL AS STRING),
  sequence_number AS CAST(NULL AS STRING)
) WITH (
  'connector' = 'filesystem',
  'path' = '${backfill.input.path}',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)
