"""Which source subtask reads which Kinesis shard, and the start check built on it.

The watermark is computed per source subtask (the Kinesis table source has no per-shard
watermarks), so a subtask reading two shards interleaves them: while it catches up on a backlog
(a start from TRIM_HORIZON, a restore after downtime) one shard's newer events move the watermark
past the other's older ones, and good events are dropped as late. ``run`` therefore refuses to
start when two open shards would share a subtask, unless ``source.allow.shared.subtasks`` says the
loss is accepted.

The assignment is the connector's uniform shard assigner (``'scan.shard-assigner' = 'uniform'``
in sql/sources/kinesis/events_raw.sql), flink-connector-kinesis 4.3.0
``org.apache.flink.streaming.connectors.kinesis.util.UniformShardAssigner`` with the fetcher's
``Math.abs(hash % parallelism)``, in Java's int arithmetic; tests/sql/test_shard_assignment.py
checks it against the jar's own class.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from jobs.definitions.config import Config, ConfigError, is_aws_endpoint

log = logging.getLogger(__name__)

HASH_KEY_BOUND = 2**128


@dataclass(frozen=True)
class Shard:
    shard_id: str
    starting_hash_key: int
    ending_hash_key: int
    is_open: bool


def _java_int(value: int) -> int:
    """Java's int overflow: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def java_string_hash(text: str) -> int:
    """java.lang.String.hashCode (over UTF-16 code units)."""
    value = 0
    encoded = text.encode("utf-16-be")
    for index in range(0, len(encoded), 2):
        value = _java_int(31 * value + int.from_bytes(encoded[index:index + 2], "big"))
    return value


def subtask_of(shard: Shard, stream_name: str, parallelism: int) -> int:
    """The source subtask (0-based) the uniform assigner gives ``shard``."""
    middle = (shard.starting_hash_key + shard.ending_hash_key) // 2
    assigned = _java_int(middle * parallelism // HASH_KEY_BOUND + java_string_hash(stream_name))
    return abs(assigned) % parallelism  # = Java's Math.abs(assigned % parallelism)


def shared_subtasks(shards: Iterable[Shard], stream_name: str, parallelism: int) -> list[list[str]]:
    """The shard ids of every subtask that would read more than one of ``shards``."""
    by_subtask: dict[int, list[str]] = defaultdict(list)
    for shard in shards:
        by_subtask[subtask_of(shard, stream_name, parallelism)].append(shard.shard_id)
    return [sorted(ids) for _, ids in sorted(by_subtask.items()) if len(ids) > 1]


def smallest_parallelism(shards: list[Shard], stream_name: str, limit_factor: int = 4) -> int | None:
    """The smallest parallelism that gives each shard a subtask of its own (None: none up to
    ``limit_factor`` x the shard count, e.g. after a split far off the middle of a shard)."""
    return next((p for p in range(max(1, len(shards)), limit_factor * len(shards) + 1)
                 if not shared_subtasks(shards, stream_name, p)), None)


def check(shards: list[Shard], stream_name: str, parallelism: int, allow_shared: bool) -> None:
    """Refuse (ConfigError) when two open shards share a subtask, unless allowed; warn when a
    closed shard still in retention shares one (a fresh start reads it beside the others)."""
    open_shards = [s for s in shards if s.is_open]
    shared = shared_subtasks(open_shards, stream_name, parallelism)
    if shared:
        wanted = smallest_parallelism(open_shards, stream_name)
        fix = (f"set job.parallelism to {wanted}" if wanted else
               "reshard evenly (UpdateShardCount, UNIFORM_SCALING)") + " or source.allow.shared.subtasks to true"
        problem = (f"job.parallelism {parallelism} puts {' and '.join(shared[0])} of stream {stream_name} "
                   f"({len(open_shards)} open shards) on one source subtask: while it catches up, their events "
                   f"interleave and some are dropped as late; {fix}")
        if not allow_shared:
            raise ConfigError(problem)
        log.warning("%s (allowed by source.allow.shared.subtasks; late events go to _late/)", problem)
        return
    with_closed = shared_subtasks(shards, stream_name, parallelism)
    if with_closed:
        log.warning("stream %s was resharded: a fresh start that reads from TRIM_HORIZON or AT_TIMESTAMP reads "
                    "closed shards beside their children on one subtask (%s), and may drop events as late; "
                    "a restore from a snapshot has finished them", stream_name, ", ".join("+".join(g) for g in with_closed))
    log.info("%d open shard(s) of %s, each read by a source subtask of its own at parallelism %d",
             len(open_shards), stream_name, parallelism)


def list_shards(kinesis: Any, stream_name: str) -> list[Shard]:
    """Every shard of the stream still in retention, open and closed. By name, as the connector
    asks (emulators file streams under their own account, so an ARN with another one is unknown);
    paged by ExclusiveStartShardId, since Kinesis refuses a NextToken beside the stream name."""
    shards: list[Shard] = []
    request = {"StreamName": stream_name}
    while True:
        response = kinesis.list_shards(**request)
        shards += [Shard(s["ShardId"], int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]),
                         "EndingSequenceNumber" not in s["SequenceNumberRange"]) for s in response["Shards"]]
        if not response.get("NextToken") or not response["Shards"]:
            return shards
        request = {"StreamName": stream_name, "ExclusiveStartShardId": shards[-1].shard_id}


def check_stream(config: Config) -> None:
    """The start check against the configured stream (source group)."""
    import boto3  # the job's process only; Managed Flink's zip ships boto3 with the kinesis model

    arn, stream_name = config.get("source", "stream.arn"), config.get("source", "stream.name")
    endpoint = config.get("source", "aws.endpoint")
    # An emulator accepts any key, and a developer's real keys must not be sent to it.
    keys = {} if is_aws_endpoint(endpoint) else {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    kinesis = boto3.client("kinesis", region_name=config.get("source", "aws.region"), endpoint_url=endpoint or None, **keys)
    try:
        shards = list_shards(kinesis, stream_name)
    except Exception as error:  # noqa: BLE001 - botocore raises many types; the message is enough
        raise ConfigError(f"property group 'source' key 'stream.arn': cannot list the shards of {arn}: {error}") from None
    check(shards, stream_name, config.get_int("job", "parallelism"), config.get("source", "allow.shared.subtasks") == "true")
