"""Put a JSON-lines file into the Kinesis stream, one record per line, as a real producer would.

Lines that are not JSON are sent unchanged: quarantining them is the job's work, and the demo must
show it. Failed records (throttling, a busy emulator) are retried with backoff; note that a retry
can reorder records within a shard, which the job tolerates like any out-of-order arrival.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500            # PutRecords limit
MAX_BATCH_BYTES = 5 * 1024 * 1024  # PutRecords limit (data + partition keys)
MAX_RECORD_BYTES = 1024 * 1024     # one record's data
MAX_KEY_CHARS = 256                # partition key length limit
MAX_ATTEMPTS = 10
RETRYABLE_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException",
                   "InternalFailure", "ServiceUnavailable", "KMSThrottlingException"}


class ProduceError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProduceStats:
    sent: int
    retried: int
    skipped: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float(self.sent)


def partition_key(line: str) -> str:
    """The event's user_id (so one user's events stay in one shard, in order); else a line hash."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if isinstance(event, dict):
        user = event.get("user_id")
        if isinstance(user, (str, int)) and not isinstance(user, bool) and str(user).strip():
            return str(user)[:MAX_KEY_CHARS]
    return hashlib.sha1(line.encode("utf-8")).hexdigest()


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", errors="surrogateescape") as events:
        for line in events:
            line = line.rstrip("\r\n")
            if line.strip():
                yield {"Data": line.encode("utf-8", errors="surrogateescape"), "PartitionKey": partition_key(line)}


def _batches(records: Iterable[dict[str, Any]], max_records: int, skipped: list[int]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(record["Data"]) + len(record["PartitionKey"].encode())
        if len(record["Data"]) > MAX_RECORD_BYTES:
            log.warning("skipping a %d-byte line: over Kinesis' 1 MiB record limit", len(record["Data"]))
            skipped[0] += 1
            continue
        if batch and (len(batch) >= max_records or size + record_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        yield batch


def _backoff(attempt: int) -> None:
    time.sleep(min(5.0, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0))


def put_batch(kinesis: Any, stream: str, batch: list[dict[str, Any]]) -> int:
    """Put one batch until every record is accepted; returns how many record re-sends it took."""
    pending = batch
    retried = 0
    last_error = ""
    for attempt in range(MAX_ATTEMPTS):
        try:
            response = kinesis.put_records(StreamName=stream, Records=pending)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in RETRYABLE_CODES:
                raise
            log.debug("PutRecords throttled (%s), attempt %d", code, attempt + 1)
            last_error = code
            retried += len(pending)
            _backoff(attempt)
            continue
        except EndpointConnectionError as exc:  # nothing listens: waiting will not help
            raise ProduceError(f"{exc} (is it up? `python -m deploy.local up`)") from exc
        except BotoCoreError as exc:  # connection reset, read timeout: the endpoint may be busy
            log.debug("PutRecords failed (%s), attempt %d", exc, attempt + 1)
            last_error = str(exc)
            retried += len(pending)
            _backoff(attempt)
            continue
        if not response.get("FailedRecordCount"):
            return retried
        results = zip(pending, response["Records"], strict=True)
        failed = [(rec, result) for rec, result in results if result.get("ErrorCode")]
        pending = [rec for rec, _ in failed]
        last_error = f"{failed[0][1]['ErrorCode']}: {failed[0][1].get('ErrorMessage', '')}"
        retried += len(pending)
        log.debug("%d records failed (%s), attempt %d", len(pending), last_error, attempt + 1)
        _backoff(attempt)
    raise ProduceError(f"{len(pending)} records still failing after {MAX_ATTEMPTS} attempts; last error: {last_error}")


def produce(kinesis: Any, stream: str, path: Path, rate: float | None = None) -> ProduceStats:
    """Send every non-blank line of ``path``; ``rate`` caps records per second (None: as fast as it goes)."""
    # With a rate, send ~5 small batches a second rather than one burst of 500 and a long pause.
    max_records = MAX_BATCH_RECORDS if not rate else max(1, min(MAX_BATCH_RECORDS, int(rate / 5)))
    skipped = [0]
    sent = retried = 0
    started = time.monotonic()
    for batch in _batches(read_records(path), max_records, skipped):
        retried += put_batch(kinesis, stream, batch)
        sent += len(batch)
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        log.debug("sent %d records", sent)
    return ProduceStats(sent=sent, retried=retried, skipped=skipped[0], seconds=time.monotonic() - started)
