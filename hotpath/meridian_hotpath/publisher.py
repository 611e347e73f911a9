"""Records to a stream off the matching path: batched, retried, delivered in the background.

The node (or the journal follower) hands records to a ``StreamPublisher`` after their inputs are
durable; handing over is a deque append, so matching never waits on the sink. A background task
drains the queues in batches and calls the sink in a worker thread (sinks do blocking network
I/O). A batch is taken once its first record has waited ``linger`` (default 1 ms) or a full batch
is waiting, so the Kinesis sink (``kinesis_sink.KinesisSink``) can pack the updates of one symbol
that arrived meanwhile into one aggregated stream record.

A record is either *kept* or *droppable*. Kept records (trades, drop-copy executions) are never
dropped: when the sink fails they are counted and put back, in order, ahead of newer ones, and
retried until delivered; when the sink defers them (their shard's write budget is spent) they go
back the same way, without counting as failures. Droppable records (top of book: a newer one
supersedes them) go after the kept ones; under pressure the oldest are dropped, the sink may
conflate them (only the newest of a symbol goes), and a failed one is not retried.

Kept records are published in input-seq order, so the publisher knows the oldest one not yet
delivered: ``delivered_through(seq)`` resolves once every kept record up to ``seq`` is in the
sink, which is what lets the node write a snapshot without covering an undelivered trade or
execution (droppable records are not waited for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from meridian_hotpath.kinesis_sink import KinesisSink
from meridian_hotpath.stream import Delivery, StreamRecord, StreamSink

log = logging.getLogger(__name__)

DEFAULT_DROPPABLE_LIMIT = 10_000
DEFAULT_BATCH_SIZE = 20_000  # user records per sink call; the sink aggregates and splits them
DEFAULT_LINGER = 0.001  # seconds the first record of a batch waits for company


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


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    dropped: int = 0  # droppable records dropped (under pressure, superseded, or after a failed delivery)
    superseded: int = 0  # of those, conflated by the sink: a newer record of the same key went instead
    failures: int = 0  # kept records a sink call failed to deliver (each attempt counts)
    sink_errors: int = 0  # sink calls that raised
    deferred: int = 0  # records the sink held back for its shard's write budget (each time)
    throttled: int = 0  # records the stream throttled (the sink retried or deferred them)


class StreamPublisher:
    """``linger``: how long the first record of a batch waits for more before the sink is called
    (a sink that aggregates packs what arrived meanwhile into the same stream records)."""

    def __init__(
        self,
        sink: StreamSink,
        name: str = "stream",
        droppable_limit: int = DEFAULT_DROPPABLE_LIMIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_delay: float = 0.5,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self.sink = sink
        self.name = name
        self.stats = PublisherStats()
        self._kept: deque[StreamRecord] = deque()
        self._droppable: deque[StreamRecord] = deque(maxlen=droppable_limit)
        self._in_flight: list[StreamRecord] = []
        self._batch_size = batch_size
        self._retry_delay = retry_delay
        self._linger = linger
        self._first_queued_at: float | None = None  # monotonic time the oldest waiting record came
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._close_requested = asyncio.Event()
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
        if not records:
            return
        if self._first_queued_at is None:
            self._first_queued_at = time.monotonic()
        for record in records:
            if not record.droppable:
                self._kept.append(record)
            else:
                if len(self._droppable) == self._droppable.maxlen:
                    self.stats.dropped += 1  # the deque drops the oldest
                self._droppable.append(record)
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
        self._close_requested.set()
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
            await self._linger_for_company()
            batch = self._take_batch()
            self._in_flight = batch
            try:
                outcome = await asyncio.to_thread(self.sink.put, batch)
            except Exception:
                log.exception("%s: sink raised", self.name)
                self.stats.sink_errors += 1
                outcome = batch
            delivery = outcome if isinstance(outcome, Delivery) else Delivery(failed=list(outcome))
            self._settle(batch, delivery)
            if any(not record.droppable for record in delivery.failed):
                await asyncio.sleep(self._retry_delay)
            elif delivery.deferred:
                await asyncio.sleep(delivery.retry_after)

    async def _linger_for_company(self) -> None:
        """Until the oldest waiting record has waited ``linger``, unless a full batch is waiting."""
        if self._closing or self._first_queued_at is None:
            return
        if len(self._kept) + len(self._droppable) >= self._batch_size:
            return
        wait = self._first_queued_at + self._linger - time.monotonic()
        if wait > 0:
            with contextlib.suppress(TimeoutError):  # a close ends the wait: deliver what is queued
                await asyncio.wait_for(self._close_requested.wait(), wait)

    def _take_batch(self) -> list[StreamRecord]:
        batch: list[StreamRecord] = []
        while self._kept and len(batch) < self._batch_size:
            batch.append(self._kept.popleft())
        while self._droppable and len(batch) < self._batch_size:
            batch.append(self._droppable.popleft())
        self._first_queued_at = time.monotonic() if self._kept or self._droppable else None
        return batch

    def _settle(self, batch: list[StreamRecord], delivery: Delivery) -> None:
        self._in_flight = []
        stats = self.stats
        undelivered = {id(record) for record in delivery.failed}
        undelivered.update(id(record) for record in delivery.deferred)
        undelivered.update(id(record) for record in delivery.superseded)
        stats.published += sum(1 for record in batch if id(record) not in undelivered)
        stats.superseded += len(delivery.superseded)
        stats.dropped += len(delivery.superseded)
        stats.deferred += len(delivery.deferred)
        stats.throttled += delivery.throttled
        failed_kept = [record for record in delivery.failed if not record.droppable]
        stats.failures += len(failed_kept)
        stats.dropped += len(delivery.failed) - len(failed_kept)
        # Kept records not delivered go back to the front, in their batch order, ahead of newer ones.
        back = {id(record) for record in failed_kept}
        back.update(id(record) for record in delivery.deferred if not record.droppable)
        if back:
            self._kept.extendleft(reversed([r for r in batch if not r.droppable and id(r) in back]))
        # Deferred droppable records go back too while there is room (newer ones may supersede them).
        deferred_droppable = [record for record in delivery.deferred if record.droppable]
        room = (self._droppable.maxlen or 0) - len(self._droppable)
        kept_back = deferred_droppable[len(deferred_droppable) - room :] if room > 0 else []
        stats.dropped += len(deferred_droppable) - len(kept_back)
        self._droppable.extendleft(reversed(kept_back))
        if (self._kept or self._droppable) and self._first_queued_at is None:
            self._first_queued_at = time.monotonic()
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


__all__ = [
    "Delivery",
    "InMemorySink",
    "KinesisSink",
    "PublisherStats",
    "StreamPublisher",
    "StreamRecord",
    "StreamSink",
]
