"""Replication of a shard's journal from its primary to its hot standby (LMAX, Aeron Cluster).

The standby connects to the primary's replication port and says where its journal ends (HELLO:
last seq and the epoch of that record). The primary checks the two journals agree there (the
**epoch log**, below): if the standby holds records the primary does not (a deposed primary's
unacknowledged tail), it answers DIVERGED with the last seq they share and the standby cuts its
journal back to it. Otherwise the primary streams RECORDS: first what the standby lacks, read from
its journal files (catch-up, in chunks, on the loop, between client batches), then every batch the
moment it is written (live). The standby writes each batch to its own journal, applies it to its
own engine and acknowledges (ACK: written seq, durable seq). In ``--ack-after replica`` the
primary answers a batch once the standby has written it; in ``replica+fsync`` once both disks hold
it.

Every RECORDS frame carries the primary's epoch; a standby refuses frames from an epoch older than
one it has seen (REFUSE): a primary deposed by a takeover can reach no standby, so in replica mode
it can acknowledge nothing. CHECK frames tell the standby each snapshot the primary's follower
wrote (seq and engine checksum): every trade up to that seq was delivered. The standby verifies its
own state at that seq against the checksum and writes its snapshot there and only there, so that
after a takeover its follower re-sends exactly what might not have been delivered.

Frames: ``u32 length | u8 kind | payload`` (the length counts the kind and the payload).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meridian_hotpath.journal import (
    RECORD_HEADER,
    RECORD_OVERHEAD,
    fsync_directory,
    segment_first_seq,
    segment_paths,
)

log = logging.getLogger(__name__)

HELLO, RECORDS, ACK, DIVERGED, CHECK, REFUSE = 1, 2, 3, 4, 5, 6
LINK_HEADER = struct.Struct("<IB")
HELLO_BODY = struct.Struct("<QH")  # last seq, epoch of that record
RECORDS_BODY = struct.Struct("<HQQ")  # primary's epoch, first seq, last seq (then the records)
ACK_BODY = struct.Struct("<QQ")  # written seq, durable seq
SEQ_BODY = struct.Struct("<Q")  # DIVERGED: the last seq both journals share
CHECK_BODY = struct.Struct("<QQ")  # seq, engine checksum (u64)
MAX_LINK_FRAME = 16 * 1024 * 1024
CATCH_UP_CHUNK = 1024 * 1024
EPOCH_LOG = "epochs.json"


class ReplicationError(Exception):
    """The link or the journals cannot go on as they are (a refused epoch, a broken frame)."""


def link_frame(kind: int, payload: bytes = b"") -> bytes:
    return LINK_HEADER.pack(len(payload) + 1, kind) + payload


class LinkReader:
    """Complete frames out of a byte stream."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[tuple[int, bytes]] = []
        offset = 0
        while len(buffer) - offset >= LINK_HEADER.size:
            length, kind = LINK_HEADER.unpack_from(buffer, offset)
            if not 1 <= length <= MAX_LINK_FRAME:
                raise ReplicationError(f"replication frame of {length} bytes")
            end = offset + 4 + length
            if end > len(buffer):
                break
            frames.append((kind, buffer[offset + LINK_HEADER.size : end]))
            offset = end
        self._buffer = buffer[offset:]
        return frames


# ---- the epoch log -----------------------------------------------------------------------------


@dataclass(slots=True)
class EpochLog:
    """Where each epoch starts in this node's journal: ``[[epoch, first seq], ...]`` (Kafka's leader
    epoch checkpoint). A new primary appends its epoch at its next seq; a standby, each epoch it
    sees in the records it receives. It tells where two journals part."""

    path: Path
    entries: list[tuple[int, int]]

    @classmethod
    def load(cls, data_dir: Path) -> EpochLog:
        path = data_dir / EPOCH_LOG
        try:
            entries = [(int(e), int(s)) for e, s in json.loads(path.read_text())]
        except FileNotFoundError:
            entries = []
        return cls(path, entries)

    def note(self, epoch: int, first_seq: int) -> None:
        """Records from ``first_seq`` on carry ``epoch`` (a no-op if it is the latest already)."""
        if self.entries and self.entries[-1][0] >= epoch:
            return
        self.entries.append((epoch, first_seq))
        self._save()

    def last_seq_of(self, epoch: int, last_seq: int) -> int:
        """The last seq of this journal (ending at ``last_seq``) written in ``epoch`` or before."""
        for later_epoch, first in self.entries:
            if later_epoch > epoch:
                return first - 1
        return last_seq

    def truncate_after(self, seq: int) -> None:
        self.entries = [(e, s) for e, s in self.entries if s <= seq]
        self._save()

    def _save(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as handle:
            json.dump(self.entries, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        fsync_directory(self.path.parent)


def epochs_in(records: bytes) -> list[tuple[int, int]]:
    """The (epoch, seq) of every record in a run of journal records."""
    found = []
    offset = 0
    while offset < len(records):
        word, seq = RECORD_HEADER.unpack_from(records, offset)
        found.append((word >> 16, seq))
        offset += (word & 0xFFFF) + RECORD_OVERHEAD
    return found


# ---- reading a journal's records back (catch-up) ----------------------------------------------


def read_records(directory: Path, after_seq: int, through_seq: int, limit: int = CATCH_UP_CHUNK) -> bytes:
    """The journal's record bytes from ``after_seq + 1`` (at most ``limit`` bytes, whole records,
    never past ``through_seq``); empty when there is nothing after ``after_seq`` yet."""
    paths = [p for p in segment_paths(directory) if segment_first_seq(p) <= after_seq + 1]
    if not paths:
        raise ReplicationError(f"the journal no longer holds seq {after_seq + 1}: restore the standby")
    path = paths[-1]
    data = path.read_bytes()
    offset, seq = 0, segment_first_seq(path)
    while seq <= after_seq and offset < len(data):
        offset += (RECORD_HEADER.unpack_from(data, offset)[0] & 0xFFFF) + RECORD_OVERHEAD
        seq += 1
    start = offset
    while seq <= through_seq and offset - start < limit and offset + RECORD_HEADER.size <= len(data):
        length = RECORD_HEADER.unpack_from(data, offset)[0] & 0xFFFF
        if offset + length + RECORD_OVERHEAD > len(data):
            break
        offset += length + RECORD_OVERHEAD
        seq += 1
    return data[start:offset]


def truncate_journal_after(directory: Path, seq: int) -> int:
    """Cut the journal back to end at ``seq`` (a standby parting from a deposed primary's tail);
    returns how many records were cut."""
    cut = 0
    for path in reversed(segment_paths(directory)):
        first = segment_first_seq(path)
        data = path.read_bytes()
        if first > seq:
            cut += len(epochs_in(data))
            path.unlink()
            continue
        offset, current = 0, first
        while current <= seq and offset < len(data):
            offset += (RECORD_HEADER.unpack_from(data, offset)[0] & 0xFFFF) + RECORD_OVERHEAD
            current += 1
        cut += len(epochs_in(data[offset:])) if offset < len(data) else 0
        with open(path, "r+b") as handle:
            handle.truncate(offset)
            os.fsync(handle.fileno())
        break
    fsync_directory(directory)
    return cut


# ---- the primary's side ------------------------------------------------------------------------


class StandbyConnection(asyncio.Protocol):
    """The primary's end of one standby's link."""

    def __init__(self, server: ReplicationServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = LinkReader()
        self.next_seq = 0  # the next seq this standby needs
        self.live = False
        self.written_seq = 0
        self.durable_seq = 0
        self._catch_up: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.attached(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
        self.server.detached(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except ReplicationError as exc:
            log.warning("standby link: %s; closing it", exc)
            self.close()
            return
        for kind, payload in frames:
            if kind == HELLO:
                self._hello(*HELLO_BODY.unpack_from(payload))
            elif kind == ACK:
                written, durable = ACK_BODY.unpack_from(payload)
                self.written_seq, self.durable_seq = (
                    max(self.written_seq, written),
                    max(self.durable_seq, durable),
                )
                self.server.acknowledged(self)
            elif kind == REFUSE:
                log.error("the standby refuses this primary: %s", payload.decode(errors="replace"))
                self.close()
                self.server.refused(payload.decode(errors="replace"))

    def _hello(self, last_seq: int, epoch: int) -> None:
        shared = self.server.epochs.last_seq_of(epoch, self.server.written_seq())
        if last_seq > shared:
            log.warning(
                "standby at seq %d (epoch %d) parts from this journal after seq %d", last_seq, epoch, shared
            )
            self.send(DIVERGED, SEQ_BODY.pack(shared))
            return
        self.next_seq = last_seq + 1
        self.written_seq = self.durable_seq = last_seq
        log.info("standby at seq %d: catching it up to %d", last_seq, self.server.written_seq())
        self._catch_up = asyncio.get_running_loop().create_task(self._catch_up_from_files())

    async def _catch_up_from_files(self) -> None:
        """Send what the standby lacks from the journal files, then switch to the live batches. The
        reads and the switch run on the loop, between its batches: no batch is missed or sent twice."""
        server = self.server
        try:
            while True:
                through = server.written_seq()
                if self.next_seq > through:
                    self.live = True
                    log.info("standby caught up at seq %d: live", through)
                    server.went_live(self)
                    return
                chunk = read_records(server.journal_directory, self.next_seq - 1, through)
                if not chunk:
                    await asyncio.sleep(0.001)
                    continue
                records = epochs_in(chunk)
                self.send_records(records[0][1], records[-1][1], chunk)
                await self._writable.wait()
                await asyncio.sleep(0)
        except ReplicationError as exc:
            log.error("cannot catch the standby up: %s", exc)
            self.send(REFUSE, str(exc).encode())
            self.close()

    def send_records(self, first: int, last: int, data: bytes) -> None:
        self.send(RECORDS, RECORDS_BODY.pack(self.server.epoch(), first, last) + data)
        self.next_seq = last + 1

    def send(self, kind: int, payload: bytes = b"") -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(link_frame(kind, payload))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ReplicationServer:
    """The primary's replication port: one standby at a time."""

    def __init__(
        self,
        journal_directory: Path,
        epochs: EpochLog,
        epoch: Callable[[], int],
        written_seq: Callable[[], int],
        on_acknowledged: Callable[[int, int], None],
        on_connection: Callable[[bool], None],
    ) -> None:
        self.journal_directory = journal_directory
        self.epochs = epochs
        self.epoch = epoch
        self.written_seq = written_seq
        self._on_acknowledged = on_acknowledged
        self._on_connection = on_connection
        self.standby: StandbyConnection | None = None
        self._server: asyncio.AbstractServer | None = None
        self.refusal: str | None = None

    async def start_on(self, sock: socket.socket) -> None:
        """Listen on ``sock`` (bound at the node's start, so its address was in the lease already)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: StandbyConnection(self), sock=sock)

    def attached(self, connection: StandbyConnection) -> None:
        if self.standby is not None:
            log.warning("a second standby connected: the first one's link is closed")
            self.standby.close()
        self.standby = connection  # live (and said so) once caught up

    def detached(self, connection: StandbyConnection) -> None:
        if self.standby is connection:
            self.standby = None
            self._on_connection(False)

    def went_live(self, connection: StandbyConnection) -> None:
        if connection is self.standby:
            self._on_connection(True)

    def acknowledged(self, connection: StandbyConnection) -> None:
        if connection is self.standby and connection.live:
            self._on_acknowledged(connection.written_seq, connection.durable_seq)

    def refused(self, reason: str) -> None:
        self.refusal = reason

    @property
    def live(self) -> bool:
        return self.standby is not None and self.standby.live

    def forward(self, first: int, last: int, records: bytes) -> None:
        """A batch the primary just wrote: to the standby, if it is live (else catch-up sends it)."""
        standby = self.standby
        if standby is not None and standby.live:
            standby.send_records(first, last, records)

    def check(self, seq: int, checksum: int) -> None:
        if self.standby is not None and self.standby.live:
            self.standby.send(CHECK, CHECK_BODY.pack(seq, checksum))

    async def close(self) -> None:
        if self.standby is not None:
            self.standby.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
