-- Raw Kinesis records exactly as received: the payload as text plus the arrival time Kinesis
-- stamped on it. Nothing is parsed here, so a malformed record can never fail the job;
-- `events_parsed` (sources/events_parsed.sql) parses it.
-- The watermark is per source subtask, so each open shard needs a subtask of its own (see README;
-- `run` checks it). The uniform assigner maps shards by their hash-key range, so evenly split
-- shards land one per subtask at parallelism >= shard count; the default one hashes shard ids
-- and puts two shards on one subtask once ids are not consecutive (after resharding, > 10 shards).
CREATE TEMPORARY TABLE events_raw (
  payload STRING,
  arrival_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  shard_id STRING METADATA FROM 'shard-id' VIRTUAL,
  sequence_number STRING METADATA FROM 'sequence-number' VIRTUAL
) WITH (
  'connector' = 'kinesis',
  'stream' = '${source.stream.name}',
  'aws.region' = '${source.aws.region}',
  'aws.endpoint' = '${source.aws.endpoint}',
  'scan.stream.initpos' = '${source.init.position}',
  'scan.stream.initpos-timestamp' = '${source.init.timestamp.seconds}',
  'scan.shard-assigner' = 'uniform',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)
