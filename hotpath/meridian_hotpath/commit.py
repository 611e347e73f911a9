"""Group commit: answers wait behind the journal records of their inputs.

Every answer joins the *open* batch together with its input's record. At the end of a loop
iteration (``call_soon`` after that iteration's reads) the open batch is sealed, written and
fdatasynced once, and only then released: answers written, then the node's bookkeeping. One batch
is durable-in-progress at a time, so records reach the disk in processing order, and batches grow
by themselves when the disk is slow.

Where the write runs depends on how long the disk takes, measured as a moving average:

* fast (below ``thread_above``, e.g. NVMe with power-loss protection, tmpfs): on the loop thread.
  Handing a batch to another thread and back costs two thread wake-ups, measured at 90 us median
  and milliseconds at p99 on a busy 2-CPU host, far more than such an fsync;
* slow (EBS, a busy disk): on the journal thread, while the loop goes on matching the inputs that
  arrive meanwhile into the next open batch, which is sealed as soon as the write returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from meridian.protocol import Fill, ProtocolRejectCode
from meridian_hotpath.journal import JournalWriter, SealedBatch
from meridian_hotpath.publisher import StreamRecord

log = logging.getLogger(__name__)

DEFAULT_THREAD_ABOVE = 300e-6
_SMOOTHING = 0.1


class AnswerChannel(Protocol):
    """Where a request's answer goes: a client connection."""

    def send(self, data: bytes) -> None: ...

    def released(self, answers: int) -> None:
        """``answers`` held answers to this channel were just sent."""

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None: ...


@dataclass(slots=True)
class Batch:
    answers: dict[AnswerChannel, list[bytes]] = field(default_factory=dict)
    received: list[tuple[str, int]] = field(default_factory=list)  # (request type, received ns)
    fills: list[Fill] = field(default_factory=list)  # staged for the publishers, in seq order
    market_data: list[StreamRecord] = field(default_factory=list)  # top-of-book changes
    after: list[Callable[[], None]] = field(default_factory=list)  # run once the answers are out
    records: int = 0


class GroupCommitter:
    def __init__(
        self,
        journal: JournalWriter,
        on_released: Callable[[Batch, float], None],
        on_failure: Callable[[BaseException], None],
        thread_above: float = DEFAULT_THREAD_ABOVE,
    ) -> None:
        self.journal = journal
        self.thread_above = thread_above  # seconds of fsync beyond which writes go to the thread
        self.fsync_estimate = 0.0  # moving average of the fsync time, seconds
        self._on_released = on_released  # (batch, seconds in fdatasync), on the loop
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self.open = Batch()
        self._in_flight: asyncio.Future[float] | None = None
        self._in_flight_batch: Batch | None = None
        self._scheduled = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.failed = False

    def add(
        self, seq: int, frame: bytes, channel: AnswerChannel, answer: bytes, label: str, received_ns: int
    ) -> None:
        """Journal ``frame`` as input ``seq`` and hold ``answer`` until that record is durable."""
        self.journal.append(seq, frame)
        batch = self.open
        batch.records += 1
        pending = batch.answers.get(channel)
        if pending is None:
            batch.answers[channel] = [answer]
        else:
            pending.append(answer)
        batch.received.append((label, received_ns))
        if not self._scheduled and self._in_flight is None:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # after this iteration's other reads: they share the fsync

    def after_answers(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every answer accepted so far has been written."""
        if self.open.records:
            self.open.after.append(action)
        elif self._in_flight_batch is not None:
            self._in_flight_batch.after.append(action)
        else:
            action()

    def durable(self, seq: int) -> asyncio.Future[None]:
        """Resolves once the journal holds every record up to ``seq`` durably."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.journal.durable_seq >= seq:
            future.set_result(None)
        else:
            self._waiters.append((seq, future))
        return future

    async def drain(self) -> None:
        """Until nothing is open or in flight (shutdown)."""
        while not self.failed and (self._in_flight is not None or self.open.records):
            if self._in_flight is None:
                self._flush()
            if self._in_flight is not None:
                await asyncio.wait([self._in_flight])

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    @property
    def threaded(self) -> bool:
        """Whether the next batch goes to the journal thread."""
        return self.fsync_estimate >= self.thread_above

    def _flush(self) -> None:
        self._scheduled = False
        if self._in_flight is not None or not self.open.records or self.failed:
            return
        sealed = self.journal.seal()
        assert sealed is not None
        batch, self.open = self.open, Batch()
        if not self.threaded:
            try:
                seconds = self.journal.write(sealed)
            except OSError as error:
                self._write_failed(error)
                return
            self._release(batch, sealed, seconds)
            return
        future = self._loop.run_in_executor(self._thread, self.journal.write, sealed)
        self._in_flight, self._in_flight_batch = future, batch
        future.add_done_callback(lambda done: self._written(batch, sealed, done))

    def _written(self, batch: Batch, sealed: SealedBatch, done: asyncio.Future[float]) -> None:
        self._in_flight = self._in_flight_batch = None
        error = done.exception()
        if error is not None:
            self._write_failed(error)
            return
        self._release(batch, sealed, done.result())
        if self.open.records:
            self._flush()  # the inputs matched while this batch was on the disk

    def _write_failed(self, error: BaseException) -> None:
        # The batch's fate on disk is unknown: answering could acknowledge a lost order.
        self.failed = True
        self._on_failure(error)

    def _release(self, batch: Batch, sealed: SealedBatch, fsync_seconds: float) -> None:
        self.fsync_estimate += _SMOOTHING * (fsync_seconds - self.fsync_estimate)
        for channel, frames in batch.answers.items():
            channel.send(frames[0] if len(frames) == 1 else b"".join(frames))
            channel.released(len(frames))
        for action in batch.after:
            action()
        self._on_released(batch, fsync_seconds)
        if self._waiters:
            ready = [w for w in self._waiters if w[0] <= sealed.last_seq]
            self._waiters = [w for w in self._waiters if w[0] > sealed.last_seq]
            for _, waiter in ready:
                if not waiter.done():
                    waiter.set_result(None)
