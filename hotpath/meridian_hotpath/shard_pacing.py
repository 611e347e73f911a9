"""Which shard a partition key writes to, and how much that shard may still take this instant.

Kinesis routes a record by the MD5 of its partition key, read as a 128-bit number, into the hash
key range of one open shard; each shard takes at most 1 MiB and 1,000 records a second, and
refuses the excess record by record (``ProvisionedThroughputExceededException``). A publisher that
keeps its own per-shard budget below those limits is not throttled by its own traffic, and knows
when a symbol's updates outrun its shard (the book updates are then conflated).

The budget is a token bucket of bytes and records: it refills at ``share`` of the limit and holds
at most ``burst`` of it, so no window of one second ever carries more than ``burst + share`` of the
limit (0.95 by default), whatever the timing.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SHARD_BYTES_PER_S = 1024 * 1024  # per shard: data blob + partition key, per second
SHARD_RECORDS_PER_S = 1000
DEFAULT_SHARE = 0.85
DEFAULT_BURST = 0.10


def hash_key(partition_key: str) -> int:
    """The 128-bit hash key Kinesis routes a partition key by."""
    return int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest(), "big")


class ShardMap:
    """The open shards of a stream by hash key range (from ``ListShards``)."""

    def __init__(self, ranges: list[tuple[int, str]]) -> None:
        ordered = sorted(ranges)
        self._starts = [start for start, _ in ordered]
        self._ids = [shard_id for _, shard_id in ordered]
        self._by_key: dict[str, str] = {}

    def shard_of(self, partition_key: str) -> str:
        shard = self._by_key.get(partition_key)
        if shard is None:
            index = bisect_right(self._starts, hash_key(partition_key)) - 1
            shard = self._by_key[partition_key] = self._ids[max(index, 0)]
        return shard

    @classmethod
    def of_stream(cls, client: Any, stream_name: str) -> ShardMap:
        """The stream's open shards (a closed parent of a split or merge takes no writes)."""
        ranges: list[tuple[int, str]] = []
        kwargs: dict[str, Any] = {"StreamName": stream_name}
        while True:
            page = client.list_shards(**kwargs)
            for shard in page["Shards"]:
                if "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {}):
                    ranges.append((int(shard["HashKeyRange"]["StartingHashKey"]), shard["ShardId"]))
            token = page.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        if not ranges:
            raise ValueError(f"stream {stream_name} has no open shard")
        return cls(ranges)


class KeyedShards(ShardMap):
    """When the shard map cannot be read: every partition key counted as a shard of its own (a
    symbol is still held to one shard's limits; keys sharing a shard may then be throttled, and
    their records are retried)."""

    def __init__(self) -> None:
        super().__init__([(0, "unknown")])

    def shard_of(self, partition_key: str) -> str:
        return partition_key


@dataclass(slots=True)
class ShardBudget:
    """What one shard may still take: bytes and records, refilled continuously."""

    bytes_rate: float
    records_rate: float
    bytes_cap: float
    records_cap: float
    bytes_left: float
    records_left: float
    at: float

    @classmethod
    def full(
        cls,
        now: float,
        bytes_per_s: float = SHARD_BYTES_PER_S,
        records_per_s: float = SHARD_RECORDS_PER_S,
        share: float = DEFAULT_SHARE,
        burst: float = DEFAULT_BURST,
    ) -> ShardBudget:
        if not (share > 0 and burst > 0 and share + burst <= 1):
            raise ValueError(f"share {share} and burst {burst} must be positive and add up to at most 1")
        bytes_cap, records_cap = bytes_per_s * burst, max(records_per_s * burst, 1.0)
        return cls(
            bytes_per_s * share, records_per_s * share, bytes_cap, records_cap, bytes_cap, records_cap, now
        )

    def refill(self, now: float) -> None:
        elapsed = now - self.at
        if elapsed > 0:
            self.bytes_left = min(self.bytes_cap, self.bytes_left + elapsed * self.bytes_rate)
            self.records_left = min(self.records_cap, self.records_left + elapsed * self.records_rate)
            self.at = now

    def room(self) -> float:
        """Bytes one record may have now (0 when the shard must wait)."""
        return self.bytes_left if self.records_left >= 1 and self.bytes_left > 0 else 0.0

    def can_send(self, size: int) -> bool:
        """A record of ``size`` bytes fits now (one larger than the whole bucket once it is full)."""
        return self.records_left >= 1 and self.bytes_left >= min(size, self.bytes_cap)

    def take(self, size: int) -> None:
        self.bytes_left -= size
        self.records_left -= 1

    def give_back(self, size: int) -> None:
        """A record the stream did not accept (an error other than throttling) costs nothing."""
        self.bytes_left = min(self.bytes_cap, self.bytes_left + size)
        self.records_left = min(self.records_cap, self.records_left + 1)

    def exhaust(self) -> None:
        """The stream throttled this shard: someone else writes to it too; wait for a refill."""
        self.bytes_left = min(self.bytes_left, 0.0)
        self.records_left = min(self.records_left, 0.0)

    def wait_for(self, size: int) -> float:
        """Seconds until a record of ``size`` bytes fits."""
        need_bytes = max(0.0, min(size, self.bytes_cap) - self.bytes_left) / self.bytes_rate
        need_records = max(0.0, 1 - self.records_left) / self.records_rate
        return max(need_bytes, need_records)
