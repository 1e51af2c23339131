"""The stream and the bucket the job uses: create them, or empty them for a clean run."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Emulators flip a stream to ACTIVE in well under a second; LocalStack's engine takes ~0.5 s.
_WAIT = {"Delay": 1, "MaxAttempts": 120}


def stream_shard_count(kinesis: Any, name: str) -> int | None:
    """Open shards of ``name``, or None if there is no such stream."""
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except kinesis.exceptions.ResourceNotFoundException:
        return None
    return int(summary["OpenShardCount"])


def ensure_stream(kinesis: Any, name: str, shard_count: int) -> bool:
    """Create the stream if missing and wait until ACTIVE. True if it was created."""
    existing = stream_shard_count(kinesis, name)
    if existing is not None:
        if existing != shard_count:
            # Resharding an emulator stream is not worth it; `reset` recreates it with the count.
            log.warning("stream %s has %d open shards, config asks for %d (run `reset` to recreate)",
                        name, existing, shard_count)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=_WAIT)
        return False
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shard_count)
    except kinesis.exceptions.ResourceInUseException:
        pass  # created concurrently (another `up`, or a test): fine, wait for it below
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=_WAIT)
    log.info("created stream %s with %d shard(s)", name, shard_count)
    return True


def recreate_stream(kinesis: Any, name: str, shard_count: int) -> None:
    """Delete and recreate: Kinesis has no 'truncate', and a new stream has no records.

    A job still reading the old stream keeps stale shard iterators: restart it after this.
    """
    try:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        kinesis.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig=_WAIT)
        log.info("deleted stream %s", name)
    except kinesis.exceptions.ResourceNotFoundException:
        pass
    ensure_stream(kinesis, name, shard_count)


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create the bucket if missing. True if it was created."""
    if bucket_exists(s3, bucket):
        return False
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # S3 rejects an explicit us-east-1 location constraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return False
    log.info("created bucket %s", bucket)
    return True


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object, and abort unfinished multipart uploads (a killed job's part files).

    Returns the number of objects deleted.
    """
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:  # one page holds at most 1000 keys, DeleteObjects' limit
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    log.info("emptied bucket %s (%d objects)", bucket, deleted)
    return deleted
