"""The standby's end of the replication link with its receive path in native code.

``replica_receiver.ReplicaReceiver`` runs a C thread on the link's socket: it writes each ordinary
batch to the journal and acknowledges it without the event loop, then queues it; this link, on the
loop, applies what the thread wrote and the journal's bookkeeping, and handles every other frame
exactly as the reference link (``shard.StandbyLink``, which it extends) does, after which the
thread goes on (``resume``). Closing the link stops the thread and applies whatever it wrote first:
nothing acknowledged is ever missing from the engine when the node takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable

from meridian_hotpath.replica_receiver import ReplicaReceiver
from meridian_hotpath.replication import (
    HELLO,
    HELLO_BODY,
    RECORDS,
    RECORDS_BODY,
    ReplicationError,
    link_frame,
)
from meridian_hotpath.shard import StandbyLink

log = logging.getLogger(__name__)

ENDED = 0  # the receiver's item kind for a link that ended


class NativeStandbyLink(StandbyLink):
    """A standby's link read by a native thread (see the module docstring)."""

    sock: socket.socket | None = None
    receiver: ReplicaReceiver | None = None
    _wake = -1  # the eventfd the thread writes when it queues something
    _closed = False

    def begin(self, sock: socket.socket) -> None:
        """Say HELLO on the connected (blocking) ``sock`` and start the receiver thread on it."""
        syncer = self.journal.syncer
        assert syncer is not None, "the standby's journal has its syncer"
        self.sock = sock
        self._items: deque[tuple[int, bytes, bool]] = deque()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.receiver = ReplicaReceiver(sock.fileno(), syncer, self._wake, self.journal.unsynced_window)
        asyncio.get_running_loop().add_reader(self._wake, self._drain)
        self.connected.set()
        self.send(HELLO, HELLO_BODY.pack(self.engine.seq, self.engine.journal_epoch))
        self.receiver.start(*self._journal_as_is())

    def _journal_as_is(self) -> tuple[int, int, int, int, int, int, int]:
        fd, size, next_seq, unsynced = self.journal.fast_lane()
        known = self.epochs.entries[-1][0] if self.epochs.entries else 0
        return fd, size, self.journal.segment_bytes, next_seq, self.primary_epoch, known, unsynced

    def send(self, kind: int, payload: bytes = b"") -> None:
        if self.receiver is not None and not self._closed:
            self.receiver.send(link_frame(kind, payload))

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        if self.receiver is None:
            return
        self._items.extend(self.receiver.take())
        try:
            while self._items and not self._closed:
                kind, payload, written = self._items.popleft()
                if written:
                    self._apply_written(payload)
                elif kind == ENDED:
                    if payload:  # a broken frame or a failed read or write: as the reference link does
                        raise ReplicationError(payload.decode(errors="replace"))
                    self.close()
                elif self.handle([(kind, payload)]) and kind == RECORDS:
                    self.receiver.resume(*self._journal_as_is())
        except ReplicationError as exc:
            self.broken(exc)

    def _apply_written(self, payload: bytes) -> None:
        """A batch the thread wrote and acknowledged: the journal's bookkeeping, then the engine."""
        _, first, last = RECORDS_BODY.unpack_from(payload)
        records = payload[RECORDS_BODY.size :]
        if first != self.engine.seq + 1:
            raise ReplicationError(f"written records from seq {first}: the engine is at {self.engine.seq}")
        self.journal.count_written(len(records), last)
        self.apply(records, first, last)

    def close(self) -> None:
        """Stop the thread, apply what it wrote and acknowledged, and end the link (idempotent)."""
        if self._closed:
            return
        self._closed = True
        receiver = self.receiver
        if receiver is not None:
            receiver.stop()
            self._items.extend(receiver.take())
            try:
                for _, payload, written in self._items:
                    if written:
                        self._apply_written(payload)
            except ReplicationError as exc:
                log.error("replication link: %s", exc)
            self._items.clear()
            asyncio.get_running_loop().remove_reader(self._wake)
            os.close(self._wake)
        if self.sock is not None:
            self.sock.close()
        self.lost.set()


async def connect_native(
    address: tuple[str, int], make_link: Callable[[], NativeStandbyLink]
) -> NativeStandbyLink:
    """A link read by a native thread: connect on the loop, then hand the socket to the thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().sock_connect(sock, address)
        sock.setblocking(True)
    except BaseException:
        sock.close()
        raise
    link = make_link()
    link.begin(sock)
    return link
