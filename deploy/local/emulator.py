"""The embedded Kinesis + S3 emulator: moto's server on one port, plus compatibility fixes.

Run as ``python -m deploy.local.emulator --host 127.0.0.1 --port 4566`` (``up`` does this).

Why moto: one pure-Python process serves both Kinesis and S3 on one port, installed by pip, no
Docker. Probed with the job's real connectors (Flink 1.20, flink-connector-kinesis 4.3.0-1.19,
flink-s3-fs-hadoop): Kinesis reads work once the connector's AWS SDK v1 stops speaking CBOR
(moto only speaks JSON); see README in this folder.

Fix 1 (S3): moto 5.2 moved some S3 responses to a generic serializer that names the XML root
``<Operation>Response`` (e.g. ``CompleteMultipartUploadResponse``) where S3 says
``CompleteMultipartUploadResult``. boto3 ignores the root; the AWS SDK v1 inside Hadoop's S3A does
not, so every Parquet commit from Flink failed with a NullPointerException in
``XmlResponsesSaxParser$CompleteMultipartUploadHandler``. Renaming the root restores S3's wire format.

Fix 2 (Kinesis): with CBOR off, the connector's SDK v1 sends GetShardIterator's ``Timestamp`` in
epoch *milliseconds*; moto reads seconds, so ``scan.stream.initpos = AT_TIMESTAMP`` pointed
50,000 years ahead and read nothing. Values too large to be seconds are taken as milliseconds.

Fix 3 (Kinesis, speed): moto's shard finds its newest sequence number by copying every key
(each PutRecords record costs O(records in the shard)) and GetRecords scans from the first record,
so a stream of 300k records accepted a few hundred records/s, and a put during a long scan failed
the scan ("OrderedDict mutated during iteration", HTTP 500). A shard's sequence numbers are
consecutive integers (each put takes the newest + 1), so both become direct look-ups.

Fix 4 (Kinesis, resharding): moto's SplitShard and MergeShards move the parent's records into the
children, a put still lands in the closed parent (the first shard whose range holds the key), and
a closed shard's GetRecords never ends. Kinesis keeps the parent's records in the parent, puts
only into open shards, and ends a closed shard with no NextShardIterator: consumers read the
parent to its end, then the children from their start. The fix makes moto do the same.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections import OrderedDict
from typing import Any, Mapping

log = logging.getLogger(__name__)

# moto's generic root name -> the root element real S3 sends (and SDK v1's SAX handlers expect).
S3_XML_ROOTS = {
    "CompleteMultipartUploadResponse": "CompleteMultipartUploadResult",
    "CreateMultipartUploadResponse": "InitiateMultipartUploadResult",
    "ListPartsResponse": "ListPartsResult",
    "ListMultipartUploadsResponse": "ListMultipartUploadsResult",
    "ListObjectsResponse": "ListBucketResult",
    "ListObjectsV2Response": "ListBucketResult",
    "DeleteObjectsResponse": "DeleteResult",
    "ListBucketsResponse": "ListAllMyBucketsResult",
}


def patch_s3_xml_roots() -> bool:
    """Rename moto's generic S3 XML roots to S3's. False if this moto has no such serializer
    (moto <= 5.1 renders S3 from templates with the right roots, so nothing is needed)."""
    try:
        from moto.core import serialize
    except ImportError:
        return False
    serializer = getattr(serialize, "S3Serializer", None)
    if serializer is None or getattr(serializer, "_deploy_local_patched", False):
        return serializer is not None
    original = serializer._serialize_body

    def _serialize_body(self: Any, body: Mapping[str, Any]) -> str:
        if isinstance(body, Mapping) and len(body) == 1:
            (root, content), = body.items()
            if root in S3_XML_ROOTS:
                body = {S3_XML_ROOTS[root]: content}
        return original(self, body)

    serializer._serialize_body = _serialize_body
    serializer._deploy_local_patched = True
    return True


# Epoch seconds stay below this until the year 5138; epoch milliseconds passed it in 1973.
_MILLIS_THRESHOLD = 100_000_000_000


def patch_kinesis_timestamp_millis() -> bool:
    """Accept GetShardIterator timestamps in epoch millis as well as seconds (see module doc)."""
    try:
        from moto.kinesis.models import KinesisBackend
    except ImportError:
        return False
    if getattr(KinesisBackend, "_deploy_local_patched", False):
        return True
    original = KinesisBackend.get_shard_iterator

    def get_shard_iterator(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Positional in moto 5.x: (arn, name, shard_id, type, sequence_number, at_timestamp).
        if "at_timestamp" in kwargs:
            kwargs["at_timestamp"] = _seconds(kwargs["at_timestamp"])
        elif len(args) >= 6:
            args = (*args[:5], _seconds(args[5]), *args[6:])
        return original(self, *args, **kwargs)

    backend: Any = KinesisBackend  # typed Any: assigning to a class's method is the point here
    backend.get_shard_iterator = get_shard_iterator
    backend._deploy_local_patched = True
    return True


def _seconds(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > _MILLIS_THRESHOLD:
        return value / 1000.0
    return value


def patch_kinesis_shard_lookups() -> bool:
    """O(1) newest/oldest sequence numbers and GetRecords by index (see module doc)."""
    try:
        from moto.kinesis.models import Shard
    except ImportError:
        return False
    if getattr(Shard, "_deploy_local_patched", False):
        return True
    original_get_records = Shard.get_records

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> Any:
        records = self.records
        if not records:
            return original_get_records(self, last_sequence_id, limit)
        first, last = next(iter(records)), next(reversed(records))
        if last - first + 1 != len(records):  # not consecutive: keep moto's scan
            return original_get_records(self, last_sequence_id, limit)
        start = max(int(last_sequence_id) + 1, first)
        stop = last if limit is None else min(last, start + limit - 1)
        results = [records[n] for n in range(start, stop + 1)]
        if not results:
            return [], int(last_sequence_id), 0
        behind = records[last].created_at - results[-1].created_at
        return results, results[-1].sequence_number, int(behind * 1000)

    shard: Any = Shard  # typed Any: assigning to a class's method is the point here
    shard.get_min_sequence_number = get_min_sequence_number
    shard.get_max_sequence_number = get_max_sequence_number
    shard.get_records = get_records
    shard._deploy_local_patched = True
    return True


def patch_kinesis_resharding() -> bool:
    """Split and merge as Kinesis does them (see module doc)."""
    try:
        from moto.kinesis.models import KinesisBackend, Stream
        from moto.kinesis.utils import decompose_shard_iterator
    except ImportError:
        return False
    if getattr(Stream, "_deploy_local_patched", False):
        return True
    original_shard_for_key = Stream.get_shard_for_key
    original_get_records = KinesisBackend.get_records

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        shard = original_shard_for_key(self, partition_key, explicit_hash_key)  # checks the key
        if shard is None or shard.is_open:
            return shard
        key = int(explicit_hash_key) if explicit_hash_key else int(hashlib.md5(partition_key.encode()).hexdigest(), 16)
        return next(s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash)

    def keeping_records(reshard: Any) -> Any:
        def run(self: Any, *args: Any, **kwargs: Any) -> None:
            kept = {shard_id: shard.records for shard_id, shard in self.shards.items()}
            reshard(self, *args, **kwargs)
            for shard_id, shard in self.shards.items():
                shard.records = kept.get(shard_id, OrderedDict())  # a new shard starts empty
        return run

    def get_records(self: Any, stream_arn: Any, shard_iterator: str, limit: Any) -> Any:
        next_iterator, records, behind = original_get_records(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, last = decompose_shard_iterator(next_iterator)
        shard = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open and int(last) >= shard.get_max_sequence_number():
            return None, records, behind  # the closed shard is read to its end
        return next_iterator, records, behind

    stream: Any = Stream  # typed Any: assigning to a class's method is the point here
    stream.get_shard_for_key = get_shard_for_key
    stream.split_shard = keeping_records(Stream.split_shard)
    stream.merge_shards = keeping_records(Stream.merge_shards)
    stream._deploy_local_patched = True
    backend: Any = KinesisBackend
    backend.get_records = get_records
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.environ.get("DEPLOY_LOCAL_EMULATOR_VERBOSE"):
        # The Kinesis source polls every shard several times a second: one log line per request
        # would grow the log by megabytes an hour. Errors are still logged.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    log.info("S3 XML root fix %s", "applied" if patch_s3_xml_roots() else "not needed")
    log.info("Kinesis millisecond-timestamp fix %s", "applied" if patch_kinesis_timestamp_millis() else "not applied")
    log.info("Kinesis shard look-up fix %s", "applied" if patch_kinesis_shard_lookups() else "not applied")
    log.info("Kinesis resharding fix %s", "applied" if patch_kinesis_resharding() else "not applied")

    from moto import server

    server.main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
