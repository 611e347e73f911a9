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
* ``replica`` / ``replica+fsync`` (a replicated shard's primary): the sealed batch goes to the
  standby first, then into this node's journal in the same step (the standby's trip overlaps the
  write; a failed write fails the node before any acknowledgement is read, and the standby's copy
  is an unanswered order, resolved by its client order id). The answers go out once the standby
  has written the batch (``replica``) or both disks hold it (``replica+fsync``).

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
    REPLICA = "replica"  # once the shard's standby holds the batch (both disks sync behind)
    REPLICA_FSYNC = "replica+fsync"  # once both disks hold it

    @property
    def replicated(self) -> bool:
        return self in (AckMode.REPLICA, AckMode.REPLICA_FSYNC)


class FencedError(Exception):
    """The primary could not confirm its lease in time: it answers nothing more (self-fencing)."""


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
        # Replication (replica modes): what the standby holds, whether it is there, and where each
        # written batch goes to reach it. Without a live standby, answers wait for the local disk.
        self.replica_written = 0
        self.replica_durable = 0
        self.replica_live = False
        # Without a live standby, a replicated mode answers from the local disk only once the lease
        # says the standby is not in sync (so it will not take over without those orders).
        self.alone_allowed = True
        self.forward: Callable[[int, int, bytes], None] | None = None
        # Fencing: answers leave only while this returns True (the primary's lease is valid).
        self.may_answer: Callable[[], bool] = lambda: True
        self.on_durable: list[Callable[[], None]] = []  # told after each fdatasync (a standby's acks)
        # A replicated shard's primary: told the safe seq each time it is computed (the follower
        # publishes no further: ``follower.DurableSeq``).
        self.on_safe: Callable[[int], None] | None = None
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
        first = batch.last_seq - batch.records + 1
        records = self.engine.take_journal()
        if self.forward is not None:  # first: the standby's trip overlaps this node's write
            self.forward(first, batch.last_seq, records)
        try:
            self.journal.write_records(records, batch.last_seq)
        except OSError as error:
            self._fail(error)
            return
        batch.written_ns = time.perf_counter_ns()
        if self.mode is AckMode.ASYNC:
            self._release(batch)
        else:
            self._waiting.append(batch)
            if self.mode.replicated:
                self._release_safe()

    def _synced(self) -> None:
        """The syncer made more records durable (or failed)."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wakeup)
        error = self.syncer.error
        if error:
            self._fail(OSError(error, f"journal fdatasync failed: {os.strerror(error)}"))
            return
        durable = self.journal.durable_seq
        self._release_safe()
        for listener in self.on_durable:
            listener()
        if self._durable_waiters:
            ready = [w for w in self._durable_waiters if w[0] <= durable]
            self._durable_waiters = [w for w in self._durable_waiters if w[0] > durable]
            for _, waiter in ready:
                if not waiter.done():
                    waiter.set_result(None)

    def replicated(self, written: int, durable: int) -> None:
        """The standby acknowledged: it holds the journal up to ``written``, durably to ``durable``."""
        self.replica_written = max(self.replica_written, written)
        self.replica_durable = max(self.replica_durable, durable)
        self._release_safe()

    def standby_connected(self, live: bool) -> None:
        self.replica_live = live
        self._release_safe()

    def oldest_waiting_ns(self) -> int | None:
        """When the oldest batch still waiting for its answers was written (None: none waits)."""
        return self._waiting[0].written_ns if self._waiting else None

    def release_safe(self) -> None:
        self._release_safe()

    def safe_seq(self) -> int:
        """The last seq whose answers may leave, by the ack mode."""
        local = self.journal.durable_seq
        mode = self.mode
        if mode is AckMode.ASYNC:
            return self.journal.next_seq - 1
        if mode is AckMode.FSYNC:
            return local
        if not self.replica_live:  # alone: from the local disk, once the lease says so
            return local if self.alone_allowed else min(self.replica_written, local)
        if mode is AckMode.REPLICA:
            return self.replica_written  # the standby holds it (and this node's write, made in the
            # same step as the send to it, is done before any acknowledgement is read)
        return min(self.replica_durable, local)

    def _release_safe(self) -> None:
        safe = self.safe_seq()
        if self.on_safe is not None:
            self.on_safe(safe)
        waiting = self._waiting
        while waiting and waiting[0].last_seq <= safe and not self.failed:
            self._release(waiting.popleft())

    def _fail(self, error: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        self._on_failure(error)

    def _release(self, batch: Batch) -> None:
        if not self.may_answer():  # the lease is no longer certainly ours: not one answer more
            self._fail(FencedError("the primary's lease may have lapsed: it stops answering"))
            return
        for channel, frames in batch.answers.items():
            channel.send(frames[0] if len(frames) == 1 else b"".join(frames))
            channel.released(batch.counts[channel])
        for action in batch.after:
            action()
        self._on_released(batch)
