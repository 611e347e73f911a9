"""Records to a stream off the matching path: batched, retried, delivered in the background.

The node hands records to a ``StreamPublisher`` after their inputs are durable; handing over is a
deque append, so matching never waits on the sink. A background task drains the queues in batches
and calls the sink in a worker thread (sinks do blocking network I/O).

A record is either *kept* or *droppable*. Kept records (trades, drop-copy executions) are never
dropped: when the sink fails they are counted and put back, in order, ahead of newer ones, and
retried until delivered. Droppable records (top of book: a newer one supersedes them) go after the
kept ones; under pressure the oldest are dropped, and a failed one is not retried.

Kept records are published in input-seq order, so the publisher knows the oldest one not yet
delivered: ``delivered_through(seq)`` resolves once every kept record up to ``seq`` is in the
sink, which is what lets the node write a snapshot without covering an undelivered trade or
execution (droppable records are not waited for).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

KINESIS_BATCH_LIMIT = 500
DEFAULT_DROPPABLE_LIMIT = 10_000
DEFAULT_BATCH_SIZE = KINESIS_BATCH_LIMIT


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record for a stream; ``payload`` is the JSON object consumers read."""

    partition_key: str
    payload: dict[str, int | str]
    seq: int  # the input it comes from
    droppable: bool = False

    def to_json(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


class StreamSink(Protocol):
    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        """Deliver ``records``; return those that could not be delivered (empty on success)."""


class InMemorySink:
    """Keeps what it receives; ``fail_next`` makes the next calls reject everything (for tests)."""

    def __init__(self) -> None:
        self.records: list[StreamRecord] = []
        self.calls = 0
        self.fail_next = 0

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            return list(records)
        self.records.extend(records)
        return []


class KinesisSink:
    """``PutRecords`` to a Kinesis stream with each record's partition key; retries only the failed
    records."""

    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None:
            # boto3 adds about 0.25 s to every node start; only a node publishing to Kinesis pays it.
            import boto3  # noqa: PLC0415

            client = boto3.client("kinesis")
        self.stream_name = stream_name
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._sleep = sleep

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        failed: list[StreamRecord] = []
        for start in range(0, len(records), KINESIS_BATCH_LIMIT):
            failed += self._put_chunk(list(records[start : start + KINESIS_BATCH_LIMIT]))
        return failed

    def _put_chunk(self, pending: list[StreamRecord]) -> list[StreamRecord]:
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(self.base_delay * 2 ** (attempt - 1))
            pending = self._attempt(pending)
            if not pending:
                return []
        return pending

    def _attempt(self, records: list[StreamRecord]) -> list[StreamRecord]:
        entries = [{"Data": record.to_json(), "PartitionKey": record.partition_key} for record in records]
        try:
            response = self.client.put_records(StreamName=self.stream_name, Records=entries)
        except Exception as exc:  # throttling, network, credentials: the whole call failed
            log.warning("%s: put_records failed for %d records: %r", self.stream_name, len(records), exc)
            return records
        if not response.get("FailedRecordCount"):
            return []
        # Results are positional: the i-th result answers the i-th record sent.
        return [
            record
            for record, result in zip(records, response["Records"], strict=True)
            if "ErrorCode" in result
        ]


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    dropped: int = 0  # droppable records dropped (under pressure or after a failed delivery)
    failures: int = 0  # kept records a sink call failed to deliver (each attempt counts)
    sink_errors: int = 0  # sink calls that raised


class StreamPublisher:
    def __init__(
        self,
        sink: StreamSink,
        name: str = "stream",
        droppable_limit: int = DEFAULT_DROPPABLE_LIMIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_delay: float = 0.5,
    ) -> None:
        self.sink = sink
        self.name = name
        self.stats = PublisherStats()
        self._kept: deque[StreamRecord] = deque()
        self._droppable: deque[StreamRecord] = deque(maxlen=droppable_limit)
        self._in_flight: list[StreamRecord] = []
        self._batch_size = batch_size
        self._retry_delay = retry_delay
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def backlog(self) -> tuple[int, int]:
        """(kept records not yet delivered, in flight included; droppable records waiting)."""
        in_flight = sum(1 for record in self._in_flight if not record.droppable)
        return len(self._kept) + in_flight, len(self._droppable)

    @property
    def oldest_undelivered_seq(self) -> int | None:
        """The seq of the oldest kept record not yet delivered; None when all are."""
        for record in self._in_flight:  # taken from the front of the kept queue: older than its head
            if not record.droppable:
                return record.seq
        return self._kept[0].seq if self._kept else None

    def publish(self, records: Sequence[StreamRecord]) -> None:
        """Queue records for the background task; never blocks. Kept records must come in seq order."""
        for record in records:
            if not record.droppable:
                self._kept.append(record)
            else:
                if len(self._droppable) == self._droppable.maxlen:
                    self.stats.dropped += 1  # the deque drops the oldest
                self._droppable.append(record)
        if records:
            self._wakeup.set()

    def delivered_through(self, seq: int) -> asyncio.Future[None]:
        """Resolves once every kept record with a seq up to ``seq`` that was handed to ``publish``
        has been delivered. Cancelling it (a timeout) abandons only the wait."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        oldest = self.oldest_undelivered_seq
        if oldest is None or oldest > seq:
            future.set_result(None)
        else:
            self._waiters.append((seq, future))
        return future

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-publisher")

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                kept, droppable = self.backlog
                log.error(
                    "%s: stopped with %d kept, %d droppable records undelivered", self.name, kept, droppable
                )

    async def _run(self) -> None:
        while True:
            if not self._kept and not self._droppable:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            self._in_flight = batch
            try:
                failed = await asyncio.to_thread(self.sink.put, batch)
            except Exception:
                log.exception("%s: sink raised", self.name)
                self.stats.sink_errors += 1
                failed = batch
            self._settle(batch, failed)
            if failed:
                await asyncio.sleep(self._retry_delay)

    def _take_batch(self) -> list[StreamRecord]:
        batch: list[StreamRecord] = []
        while self._kept and len(batch) < self._batch_size:
            batch.append(self._kept.popleft())
        while self._droppable and len(batch) < self._batch_size:
            batch.append(self._droppable.popleft())
        return batch

    def _settle(self, batch: list[StreamRecord], failed: list[StreamRecord]) -> None:
        self._in_flight = []
        self.stats.published += len(batch) - len(failed)
        failed_kept = [record for record in failed if not record.droppable]
        self.stats.failures += len(failed_kept)
        # Failed kept records go back to the front, in their original order, ahead of newer ones.
        self._kept.extendleft(reversed(failed_kept))
        self.stats.dropped += len(failed) - len(failed_kept)
        if self._waiters:
            self._wake_delivered()

    def _wake_delivered(self) -> None:
        oldest = self.oldest_undelivered_seq
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for seq, future in self._waiters:
            if future.done():
                continue  # abandoned
            if oldest is None or oldest > seq:
                future.set_result(None)
            else:
                waiting.append((seq, future))
        self._waiters = waiting
