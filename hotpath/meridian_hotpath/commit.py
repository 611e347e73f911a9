"""Answers wait behind the journal records of their inputs, as the node's ack mode says.

The matching core encodes each state-changing request's answer and its journal record together
(``MatchingEngine.feed``). Answers join the *open* batch; at the end of a loop iteration
(``call_soon`` after that iteration's reads) the batch is sealed: its records are written with one
``write()`` on the loop (into the page cache, microseconds) and handed to the journal's syncer
thread, which runs ``fdatasync`` off the loop (``journal_sync``). Then, by ack mode:

* ``fsync``: the batch waits until the syncer reports its records durable (an eventfd wakes the
  loop), then its answers go out. An acknowledged order survives a crash of the host.
* ``async``: the answers go out as soon as the records are written; fdatasync follows behind,
  continuously. An acknowledged order survives a crash of the node's process (the kernel holds the
  write); a crash of the host can lose what the last fdatasync did not cover, which a replicated
  shard covers.

Batches are released in order, so a client's answers keep their order within each connection. A
failed write or fdatasync fails the node: the fate of the records on disk is unknown, and
answering could acknowledge a lost order.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from meridian.protocol import ProtocolRejectCode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter

log = logging.getLogger(__name__)


class AckMode(enum.StrEnum):
    FSYNC = "fsync"
    ASYNC = "async"


class AnswerChannel(Protocol):
    """Where a request's answer goes: a client connection."""

    def send(self, data: bytes) -> None: ...

    def held(self, answers: int) -> None:
        """``answers`` answers to this channel now wait for their journal records."""

    def released(self, answers: int) -> None:
        """``answers`` held answers to this channel were just sent."""

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None: ...


@dataclass(slots=True)
class Batch:
    answers: dict[AnswerChannel, list[bytes]] = field(default_factory=dict)
    counts: dict[AnswerChannel, int] = field(default_factory=dict)  # held answers per channel
    received: list[tuple[int, int]] = field(default_factory=list)  # (received ns, requests)
    after: list[Callable[[], None]] = field(default_factory=list)  # run once the answers are out
    records: int = 0
    last_seq: int = 0
    written_ns: int = 0


class Committer:
    def __init__(
        self,
        engine: MatchingEngine,
        journal: JournalWriter,
        mode: AckMode,
        on_released: Callable[[Batch], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.mode = mode
        self._on_released = on_released  # (batch), on the loop, after its answers went out
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self.open = Batch()
        self._waiting: deque[Batch] = deque()  # written, not yet durable (fsync mode)
        self._scheduled = False
        self._durable_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.failed = False
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        assert journal.syncer is not None, "the journal's syncer is started by the node, after this"
        self.syncer = journal.syncer
        self.syncer.notify(self._wakeup)
        self._loop.add_reader(self._wakeup, self._synced)

    def hold(self, channel: AnswerChannel, answers: bytes, requests: int, received_ns: int) -> None:
        """Hold ``answers`` (to ``requests`` state-changing requests read at ``received_ns``) until
        their journal records are safe by the ack mode."""
        batch = self.open
        channel.held(requests)
        pending = batch.answers.get(channel)
        if pending is None:
            batch.answers[channel] = [answers]
            batch.counts[channel] = requests
        else:
            pending.append(answers)
            batch.counts[channel] += requests
        batch.received.append((received_ns, requests))
        batch.records += requests
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # after this iteration's other reads: they share the write

    def after_answers(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every answer accepted so far has been written."""
        if self.open.records:
            self.open.after.append(action)
        elif self._waiting:
            self._waiting[-1].after.append(action)
        else:
            action()

    def durable(self, seq: int) -> asyncio.Future[None]:
        """Resolves once the journal holds every record up to ``seq`` durably."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.journal.durable_seq >= seq:
            future.set_result(None)
        else:
            self._durable_waiters.append((seq, future))
        return future

    async def drain(self) -> None:
        """Until everything accepted is written and, in fsync mode, durable (shutdown)."""
        if self.open.records:
            self._flush()
        while not self.failed and self._waiting:
            await self.durable(self._waiting[-1].last_seq)

    def close(self) -> None:
        self._loop.remove_reader(self._wakeup)
        os.close(self._wakeup)

    def _flush(self) -> None:
        self._scheduled = False
        batch = self.open
        if not batch.records or self.failed:
            return
        self.open = Batch()
        batch.last_seq = self.engine.seq
        try:
            self.journal.write_records(self.engine.take_journal(), batch.last_seq)
        except OSError as error:
            self._fail(error)
            return
        batch.written_ns = time.perf_counter_ns()
        if self.mode is AckMode.ASYNC:
            self._release(batch)
        else:
            self._waiting.append(batch)

    def _synced(self) -> None:
        """The syncer made more records durable (or failed)."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wakeup)
        error = self.syncer.error
        if error:
            self._fail(OSError(error, f"journal fdatasync failed: {os.strerror(error)}"))
            return
        durable = self.journal.durable_seq
        waiting = self._waiting
        while waiting and waiting[0].last_seq <= durable:
            self._release(waiting.popleft())
        if self._durable_waiters:
            ready = [w for w in self._durable_waiters if w[0] <= durable]
            self._durable_waiters = [w for w in self._durable_waiters if w[0] > durable]
            for _, waiter in ready:
                if not waiter.done():
                    waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        self._on_failure(error)

    def _release(self, batch: Batch) -> None:
        for channel, frames in batch.answers.items():
            channel.send(frames[0] if len(frames) == 1 else b"".join(frames))
            channel.released(batch.counts[channel])
        for action in batch.after:
            action()
        self._on_released(batch)
