"""A Kinesis stream stand-in that enforces the per-shard write limits, as Kinesis does.

moto accepts any rate; this stand-in refuses what a real provisioned stream refuses, so tests and
the benchmark can show a publisher staying under the limits and surviving throttling:

* ``CreateStream``'s layout: ``shards`` shards splitting the 128-bit hash key space evenly; a
  record goes to the shard whose range holds the MD5 of its partition key.
* Per shard, at most ``records_per_s`` records and ``bytes_per_s`` bytes (data + partition key) in
  any one-second window. A ``PutRecords`` record beyond that is refused on its own, with
  ``ProvisionedThroughputExceededException`` in its result (the rest of the call goes on), and is
  counted as ``WriteProvisionedThroughputExceeded`` is.
* The request limits: 1-500 records and 5 MiB per call, 1 MiB per record, partition keys of
  1-256 characters (a ``ClientError`` for the whole call, as the API answers).

Accepted records are kept per shard with a sequence number and their arrival time; ``read``
returns them as ``GetRecords`` does. The clock is injectable, so tests control time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from botocore.exceptions import ClientError

MAX_RECORD_BYTES = 1024 * 1024
MAX_CALL_BYTES = 5 * 1024 * 1024
MAX_CALL_RECORDS = 500
HASH_SPACE = 1 << 128
THROTTLED = "ProvisionedThroughputExceededException"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: float  # the stand-in's clock when it was accepted


@dataclass
class Shard:
    shard_id: str
    start: int
    end: int
    records: list[StoredRecord] = field(default_factory=list)
    window: deque[tuple[float, int]] = field(default_factory=deque)  # (arrival, bytes) in the last second
    window_bytes: int = 0
    throttled: int = 0
    per_second: dict[int, list[int]] = field(default_factory=dict)  # whole second -> [records, bytes]
    peak_records: int = 0  # most records in any one-second window
    peak_bytes: int = 0


class LimitedKinesis:
    """One stream, ``put_records``/``list_shards`` as boto3's client answers them, plus ``read``."""

    def __init__(
        self,
        stream_name: str,
        shards: int,
        records_per_s: int = 1000,
        bytes_per_s: int = 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream_name = stream_name
        self.records_per_s, self.bytes_per_s = records_per_s, bytes_per_s
        self.clock = clock
        step = HASH_SPACE // shards
        self.shards = [
            Shard(f"shardId-{i:012d}", i * step, HASH_SPACE - 1 if i == shards - 1 else (i + 1) * step - 1)
            for i in range(shards)
        ]
        self.calls = 0
        self._sequence = 0
        self._lock = threading.Lock()  # the publisher's thread writes, the consumer's reads

    # ---- the API ---------------------------------------------------------------------------------

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self._check_stream(kwargs.get("StreamName", self.stream_name), "ListShards")
        return {
            "Shards": [
                {
                    "ShardId": shard.shard_id,
                    "HashKeyRange": {"StartingHashKey": str(shard.start), "EndingHashKey": str(shard.end)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "0"},
                }
                for shard in self.shards
            ]
        }

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self._check_stream(kwargs.get("StreamName", ""), "PutRecords")
        entries = kwargs.get("Records", [])
        self._validate(entries)
        with self._lock:
            self.calls += 1
            now = self.clock()
            results = [self._put_one(entry, now) for entry in entries]
        failed = sum(1 for result in results if "ErrorCode" in result)
        return {"FailedRecordCount": failed, "Records": results}

    # ---- reading and accounting ------------------------------------------------------------------

    def read(self, shard_id: str, position: int, limit: int = 10_000) -> list[StoredRecord]:
        """Up to ``limit`` records of a shard from index ``position`` (GetRecords' 10,000 at most)."""
        with self._lock:
            shard = self._shard(shard_id)
            return shard.records[position : position + limit]

    def shard_for(self, partition_key: str) -> Shard:
        hashed = int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest(), "big")
        return next(shard for shard in self.shards if shard.start <= hashed <= shard.end)

    @property
    def throttled(self) -> int:
        return sum(shard.throttled for shard in self.shards)

    # ---- inside --------------------------------------------------------------------------------

    def _put_one(self, entry: dict[str, Any], now: float) -> dict[str, str]:
        key, data = str(entry["PartitionKey"]), bytes(entry["Data"])
        shard = self.shard_for(key)
        size = len(data) + len(key.encode())
        window = shard.window
        while window and window[0][0] <= now - 1.0:
            shard.window_bytes -= window.popleft()[1]
        if len(window) + 1 > self.records_per_s or shard.window_bytes + size > self.bytes_per_s:
            shard.throttled += 1
            return {
                "ErrorCode": THROTTLED,
                "ErrorMessage": f"Rate exceeded for shard {shard.shard_id} in stream {self.stream_name}.",
            }
        window.append((now, size))
        shard.window_bytes += size
        shard.peak_records = max(shard.peak_records, len(window))
        shard.peak_bytes = max(shard.peak_bytes, shard.window_bytes)
        second = shard.per_second.setdefault(int(now), [0, 0])
        second[0] += 1
        second[1] += size
        self._sequence += 1
        sequence_number = f"{self._sequence:056d}"
        shard.records.append(StoredRecord(sequence_number, key, data, now))
        return {"SequenceNumber": sequence_number, "ShardId": shard.shard_id}

    def _validate(self, entries: list[dict[str, Any]]) -> None:
        if not 1 <= len(entries) <= MAX_CALL_RECORDS:
            _refuse(
                "ValidationException", f"Records must hold 1-{MAX_CALL_RECORDS} records, got {len(entries)}"
            )
        total = 0
        for entry in entries:
            key = entry.get("PartitionKey")
            if not isinstance(key, str) or not 1 <= len(key) <= 256:
                _refuse("ValidationException", f"PartitionKey must be 1-256 characters, got {key!r}")
            size = len(entry.get("Data", b"")) + len(key.encode())
            if size > MAX_RECORD_BYTES:
                _refuse("ValidationException", f"a record of {size} bytes is over the 1 MiB limit")
            total += size
        if total > MAX_CALL_BYTES:
            _refuse("InvalidArgumentException", f"the request's {total} bytes are over the 5 MiB limit")

    def _check_stream(self, name: str, operation: str) -> None:
        if name != self.stream_name and not name.endswith(f"/{self.stream_name}"):
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": f"Stream {name} not found"}},
                operation,
            )

    def _shard(self, shard_id: str) -> Shard:
        return next(shard for shard in self.shards if shard.shard_id == shard_id)


def _refuse(code: str, message: str) -> NoReturn:
    raise ClientError({"Error": {"Code": code, "Message": message}}, "PutRecords")
