"""``PutRecords`` to a Kinesis stream: updates of one symbol aggregated, paced per shard, in order.

Each call of :meth:`KinesisSink.put` packs the batch's records of each partition key (a symbol),
in seq order, into KPL aggregated records (``meridian.kpl``) of at most ``max_record_bytes``, so a
symbol is no longer capped at a shard's 1,000 records a second but at its 1 MiB a second. Every
shard has a write budget (``shard_pacing.ShardBudget``) that keeps the publisher under both limits:

* a key whose shard has no budget left is not sent now: its records come back ``deferred``, and
  the publisher offers them again ahead of newer ones;
* when a shard's pending bytes exceed its budget, the droppable records of each key (top of book)
  are conflated: all but the newest are ``superseded``. Trades are never dropped: they wait.

Ordering: one ``PutRecords`` call carries at most one aggregated record per key, and a key's next
record is sent only once the previous one is acknowledged, because PutRecords does not order the
records of one call. So a key's delivered records are always a prefix of its records, in order.

A record the stream throttles (``ProvisionedThroughputExceededException``: another writer shares
the shard) empties its shard's budget and is deferred; any other error is retried here up to
``max_attempts`` times with exponential backoff, then the key's records are given back as failed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meridian.aws_clients import error_code
from meridian.kpl import MAX_RECORD_BYTES, aggregate, framing_bytes, user_record_bytes
from meridian_hotpath.shard_pacing import (
    DEFAULT_BURST,
    DEFAULT_SHARE,
    SHARD_BYTES_PER_S,
    SHARD_RECORDS_PER_S,
    KeyedShards,
    ShardBudget,
    ShardMap,
)
from meridian_hotpath.stream import Delivery, StreamRecord

log = logging.getLogger(__name__)

PUT_RECORDS_LIMIT = 500  # records per PutRecords call
PUT_RECORDS_BYTES = 5 * 1024 * 1024  # per call, partition keys included
THROTTLED = "ProvisionedThroughputExceededException"
MAX_RETRY_AFTER = 0.05


@dataclass(slots=True)
class _Entry:
    """One aggregated record on its way: the key, how many user records it takes, its data."""

    key: str
    count: int
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data) + len(self.key.encode())


class _Pending:
    """One key's records of the batch, in seq order."""

    __slots__ = ("attempts", "items", "key", "shard")

    def __init__(self, key: str, shard: str) -> None:
        self.key, self.shard = key, shard
        self.items: deque[StreamRecord] = deque()
        self.attempts = 0

    def conflate(self) -> list[StreamRecord]:
        """Drop every droppable record but the newest; return the dropped ones."""
        newest = next((record for record in reversed(self.items) if record.droppable), None)
        if newest is None:
            return []
        superseded = [record for record in self.items if record.droppable and record is not newest]
        if superseded:
            self.items = deque(record for record in self.items if not record.droppable or record is newest)
        return superseded

    def take(self, limit: float, encode: Callable[[StreamRecord], bytes]) -> _Entry:
        """The head records that fit in ``limit`` bytes, aggregated (at least one: items is not empty)."""
        size = framing_bytes(self.key)
        datas: list[bytes] = []
        for record in self.items:
            data = encode(record)
            grown = size + user_record_bytes(len(data))
            if datas and grown > limit:
                break
            datas.append(data)
            size = grown
        return _Entry(self.key, len(datas), aggregate(self.key, datas))


class KinesisSink:
    """Aggregating, paced ``PutRecords`` to ``stream_name`` (see the module docstring)."""

    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_record_bytes: int = MAX_RECORD_BYTES,
        shard_bytes_per_s: int = SHARD_BYTES_PER_S,
        shard_records_per_s: int = SHARD_RECORDS_PER_S,
        share: float = DEFAULT_SHARE,
        burst: float = DEFAULT_BURST,
        shard_map_ttl: float = 60.0,
    ) -> None:
        if client is None:
            # boto3 adds about 0.25 s to every node start; only a node publishing to Kinesis pays it.
            import boto3  # noqa: PLC0415

            client = boto3.client("kinesis")
        self.stream_name = stream_name
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_record_bytes = min(max_record_bytes, MAX_RECORD_BYTES)
        self._sleep, self._clock = sleep, clock
        self._budget_args = (shard_bytes_per_s, shard_records_per_s, share, burst)
        self._budgets: dict[str, ShardBudget] = {}
        self._shards: ShardMap | None = None
        self._shards_read_at = 0.0
        self._shard_map_ttl = shard_map_ttl
        # The JSON of records deferred by the last call, which the publisher offers again.
        self._encoded: dict[int, tuple[StreamRecord, bytes]] = {}
        self.calls = 0  # PutRecords calls made
        self.records_sent = 0  # aggregated Kinesis records accepted

    # ---- shards and their budgets -----------------------------------------------------------

    def _shard_map(self, now: float) -> ShardMap:
        if self._shards is None or now - self._shards_read_at >= self._shard_map_ttl:
            try:
                self._shards = ShardMap.of_stream(self.client, self.stream_name)
            except Exception as exc:
                if self._shards is None:
                    log.warning("%s: shard map unreadable (%r): one budget per key", self.stream_name, exc)
                    self._shards = KeyedShards()
            self._shards_read_at = now
        return self._shards

    def _budget(self, shard: str, now: float) -> ShardBudget:
        budget = self._budgets.get(shard)
        if budget is None:
            budget = self._budgets[shard] = ShardBudget.full(now, *self._budget_args)
        budget.refill(now)
        return budget

    # ---- one batch ----------------------------------------------------------------------------

    def put(self, records: Sequence[StreamRecord]) -> Delivery:
        delivery = Delivery()
        now = self._clock()
        previous = self._encoded
        encoded: dict[int, tuple[StreamRecord, bytes]] = {}

        def encode(record: StreamRecord) -> bytes:
            held = encoded.get(id(record)) or previous.get(id(record))
            if held is None or held[0] is not record:
                held = (record, record.to_json())
            encoded[id(record)] = held
            return held[1]

        pending = self._by_key(records, self._shard_map(now))
        self._conflate_where_over_budget(pending, now, delivery, encode)
        while True:
            now = self._clock()
            entries = self._next_entries(pending, now, encode)
            if not entries:
                break
            if self._send(entries, pending, now, delivery):
                worst = max(p.attempts for p in pending.values())
                self._sleep(self.base_delay * 2 ** (worst - 1))
        now = self._clock()
        waits = []
        for key_pending in pending.values():
            if key_pending.items:
                delivery.deferred += key_pending.items
                budget = self._budget(key_pending.shard, now)
                # Come back when a worthwhile record fits (a quarter of the burst, or all that waits),
                # not as soon as one update does: a saturated key is offered again 30-odd times a
                # second, not a thousand.
                worthwhile = min(_size_of(key_pending, encode, budget.bytes_cap / 4), budget.bytes_cap / 4)
                waits.append(budget.wait_for(int(worthwhile)))
        delivery.retry_after = min(max(min(waits, default=0.0), 0.0), MAX_RETRY_AFTER)
        deferred = {id(record) for record in delivery.deferred}
        self._encoded = {key: held for key, held in encoded.items() if key in deferred}
        return delivery

    def _by_key(self, records: Sequence[StreamRecord], shards: ShardMap) -> dict[str, _Pending]:
        pending: dict[str, _Pending] = {}
        # seq order per key; at one seq the trades first, then the book they left.
        for record in sorted(records, key=lambda r: (r.seq, r.droppable)):
            key_pending = pending.get(record.partition_key)
            if key_pending is None:
                key = record.partition_key
                key_pending = pending[key] = _Pending(key, shards.shard_of(key))
            key_pending.items.append(record)
        return pending

    def _conflate_where_over_budget(
        self,
        pending: dict[str, _Pending],
        now: float,
        delivery: Delivery,
        encode: Callable[[StreamRecord], bytes],
    ) -> None:
        by_shard: dict[str, list[_Pending]] = {}
        for key_pending in pending.values():
            by_shard.setdefault(key_pending.shard, []).append(key_pending)
        for shard, keys in by_shard.items():
            budget = self._budget(shard, now)
            # Pressure is bytes: a shard out of records for the instant aggregates more instead.
            if budget.bytes_left <= 0 or _more_than(keys, budget.bytes_left, encode):
                for key_pending in keys:
                    delivery.superseded += key_pending.conflate()

    def _next_entries(
        self, pending: dict[str, _Pending], now: float, encode: Callable[[StreamRecord], bytes]
    ) -> list[_Entry]:
        """At most one aggregated record per key, each within its shard's budget."""
        entries: list[_Entry] = []
        for key_pending in pending.values():
            if not key_pending.items or key_pending.attempts >= self.max_attempts:
                continue
            budget = self._budget(key_pending.shard, now)
            first = framing_bytes(key_pending.key) + user_record_bytes(len(encode(key_pending.items[0])))
            if not budget.can_send(first):
                continue
            limit = min(self.max_record_bytes - len(key_pending.key.encode()), max(budget.room(), first))
            entry = key_pending.take(limit, encode)
            budget.take(entry.size)
            entries.append(entry)
        return entries

    def _send(
        self, entries: list[_Entry], pending: dict[str, _Pending], now: float, delivery: Delivery
    ) -> bool:
        """Send ``entries`` in as few calls as the limits allow; True when any must be retried."""
        retry = False
        for call in _calls(entries):
            for entry, error in zip(call, self._put_records(call), strict=True):
                key_pending = pending[entry.key]
                budget = self._budget(key_pending.shard, now)
                if error is None:
                    for _ in range(entry.count):
                        key_pending.items.popleft()
                    key_pending.attempts = 0
                    self.records_sent += 1
                elif error == THROTTLED:
                    budget.exhaust()
                    delivery.throttled += entry.count
                else:
                    budget.give_back(entry.size)
                    key_pending.attempts += 1
                    if key_pending.attempts >= self.max_attempts:
                        delivery.failed += key_pending.items
                        key_pending.items.clear()
                    else:
                        retry = True
        return retry

    def _put_records(self, call: list[_Entry]) -> list[str | None]:
        """One PutRecords call: each entry's error code, or None where it was accepted."""
        self.calls += 1
        records = [{"Data": entry.data, "PartitionKey": entry.key} for entry in call]
        try:
            response = self.client.put_records(StreamName=self.stream_name, Records=records)
        except Exception as exc:  # network, credentials, a whole-call throttle: every record failed
            code = error_code(exc)
            log.warning("%s: put_records failed for %d records: %r", self.stream_name, len(call), exc)
            return [THROTTLED if code == THROTTLED else "CallFailed"] * len(call)
        # Results are positional: the i-th result answers the i-th record sent.
        return [result.get("ErrorCode") for result in response["Records"]]


def _size_of(key_pending: _Pending, encode: Callable[[StreamRecord], bytes], enough: float) -> int:
    """The key's records aggregated, in bytes, counted up to ``enough``."""
    total = framing_bytes(key_pending.key)
    for record in key_pending.items:
        total += user_record_bytes(len(encode(record)))
        if total >= enough:
            break
    return total


def _more_than(keys: list[_Pending], limit: float, encode: Callable[[StreamRecord], bytes]) -> bool:
    """Whether the keys' records, aggregated, come to more than ``limit`` bytes (counts no further)."""
    total = 0
    for key_pending in keys:
        total += framing_bytes(key_pending.key)
        for record in key_pending.items:
            total += user_record_bytes(len(encode(record)))
            if total > limit:
                return True
    return total > limit


def _calls(entries: list[_Entry]) -> list[list[_Entry]]:
    """``entries`` cut into PutRecords calls of at most 500 records and 5 MiB."""
    calls: list[list[_Entry]] = []
    current: list[_Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == PUT_RECORDS_LIMIT or size + entry.size > PUT_RECORDS_BYTES):
            calls.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    calls.append(current)  # entries is never empty
    return calls
