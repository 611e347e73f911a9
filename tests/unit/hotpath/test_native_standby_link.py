"""The standby's native receive path (``native_link`` over ``replica_receiver``) against the reference
link on the event loop (``shard.StandbyLink``): the same frames from a scripted primary leave the
same journal (byte for byte, segment for segment), the same engine, the same epoch log, the same
CHECKs seen and the same refusals; every batch is acknowledged once written; and a link closed
before the loop applied what the thread wrote applies it first (a takeover never misses an
acknowledged order)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import encode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter, encode_record, segment_paths
from meridian_hotpath.native_link import NativeStandbyLink, connect_native
from meridian_hotpath.replication import (
    ACK,
    ACK_BODY,
    CHECK,
    CHECK_BODY,
    DIVERGED,
    HELLO,
    HELLO_BODY,
    LINK_HEADER,
    RECORDS,
    RECORDS_BODY,
    REFUSE,
    SEQ_BODY,
    EpochLog,
    LinkReader,
    link_frame,
)
from meridian_hotpath.shard import StandbyLink, connect_on_loop
from tests.unit.statemachines.trading_data import crossing_orders

ORDERS = crossing_orders(400)
Connect = Callable[[tuple[str, int], Callable[[], StandbyLink]], Awaitable[StandbyLink]]


def records(first: int, last: int, epoch: int) -> bytes:
    return b"".join(encode_record(seq, encode(ORDERS[seq - 1]), epoch) for seq in range(first, last + 1))


def records_frame(first: int, last: int, epoch: int, record_epoch: int | None = None) -> bytes:
    body = RECORDS_BODY.pack(epoch, first, last)
    return link_frame(RECORDS, body + records(first, last, epoch if record_epoch is None else record_epoch))


@dataclass
class Standby:
    engine: MatchingEngine
    journal: JournalWriter
    epochs: EpochLog
    checks: list[tuple[int, int]] = field(default_factory=list)
    diverged: list[int] = field(default_factory=list)

    def make(self, native: bool) -> Callable[[], StandbyLink]:
        kind = NativeStandbyLink if native else StandbyLink
        return lambda: kind(self.engine, self.journal, self.epochs, self._check, self.diverged.append)

    def _check(self, seq: int, checksum: int) -> None:
        self.checks.append((seq, checksum))


def standby(directory: Path, segment_bytes: int, window: int, sync_gap: float) -> Standby:
    journal = JournalWriter(directory / "journal", 1, segment_bytes, unsynced_window=window)
    syncer = journal.start_syncer()
    syncer.pace(sync_gap)
    syncer.start()
    return Standby(MatchingEngine(DEFAULT_INSTRUMENTS), journal, EpochLog.load(directory))


class Primary:
    """The primary's end of one link, scripted: blocking sends and reads on the accepted socket."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.listener.getsockname()
        self.sock: socket.socket | None = None
        self.reader = LinkReader()
        self.frames: list[tuple[int, bytes]] = []

    def accept(self) -> tuple[int, int]:
        self.sock, _ = self.listener.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind, payload = self.next_frame()
        assert kind == HELLO
        seq, epoch = HELLO_BODY.unpack(payload)
        return seq, epoch

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def next_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        assert self.sock is not None
        deadline = time.monotonic() + timeout
        while not self.frames:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the standby closed the link")
            self.frames.extend(self.reader.feed(data))
        return self.frames.pop(0)

    def acked_through(self, seq: int) -> list[int]:
        """Read ACKs until one says ``seq`` is written; the written seqs acknowledged on the way."""
        seen: list[int] = []
        while not seen or seen[-1] < seq:
            kind, payload = self.next_frame()
            assert kind == ACK, f"frame {kind} where an ACK was due"
            seen.append(ACK_BODY.unpack(payload)[0])
        return seen

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.listener.close()


async def linked(node: Standby, native: bool, primary: Primary) -> StandbyLink:
    connect: Connect = connect_native if native else connect_on_loop  # type: ignore[assignment]
    pending = asyncio.ensure_future(connect(primary.address, node.make(native)))
    await asyncio.to_thread(primary.accept)
    return await pending


async def settle(link: StandbyLink, node: Standby, seq: int) -> None:
    deadline = time.monotonic() + 10
    while node.engine.seq < seq:
        assert time.monotonic() < deadline, f"the standby applied {node.engine.seq} of {seq}"
        await asyncio.sleep(0.001)


def until_the_link_ends(
    tmp_path: Path, native: bool, script: Callable[[StandbyLink, Standby, Primary], Awaitable[None]]
) -> Standby:
    """Run ``script`` against a fresh standby's link, then wait for the standby to end the link."""
    node = standby(tmp_path, segment_bytes=1 << 20, window=1 << 20, sync_gap=0.0)
    primary = Primary()

    async def scenario() -> None:
        link = await linked(node, native, primary)
        try:
            await script(link, node, primary)
            await asyncio.wait_for(link.lost.wait(), 10)
        finally:
            link.close()
            primary.close()

    asyncio.run(scenario())
    node.journal.close()
    return node


def run_script(tmp_path: Path, native: bool) -> tuple[Standby, list[int], list[tuple[int, int]]]:
    """Epoch 1 from seq 1, many batches over small segments and a tight unsynced window, a CHECK,
    then epoch 2 (a new primary) and its batches."""
    directory = tmp_path / ("native" if native else "loop")
    node = standby(directory, segment_bytes=3000, window=2500, sync_gap=0.02)
    primary = Primary()
    acks: list[int] = []

    async def scenario() -> None:
        link = await linked(node, native, primary)
        try:
            seq = 0
            for size in [3, 1, 7, 2, 12, 5, 1, 1, 20, 4, 9, 30, 2, 6]:  # epoch 1: seq 1-103
                primary.send(records_frame(seq + 1, seq + size, 1))
                seq += size
                acks.extend(await asyncio.to_thread(primary.acked_through, seq))
            await settle(link, node, seq)
            primary.send(link_frame(CHECK, CHECK_BODY.pack(seq, 12345)))
            # several frames in one send: the thread writes them all, then acknowledges the last
            burst = b"".join(records_frame(s, s + 4, 1) for s in range(seq + 1, seq + 40, 5))
            primary.send(burst)
            seq += 40
            acks.extend(await asyncio.to_thread(primary.acked_through, seq))
            for size in [4, 8, 16, 3]:  # epoch 2: its first frame goes to the loop
                primary.send(records_frame(seq + 1, seq + size, 2))
                seq += size
                acks.extend(await asyncio.to_thread(primary.acked_through, seq))
            await settle(link, node, seq)
        finally:
            link.close()
            primary.close()

    asyncio.run(scenario())
    node.journal.close()
    return node, acks, node.checks


def test_the_native_link_leaves_what_the_loop_link_leaves(tmp_path: Path) -> None:
    loop_node, loop_acks, loop_checks = run_script(tmp_path, native=False)
    native_node, native_acks, native_checks = run_script(tmp_path, native=True)
    assert native_node.engine.seq == loop_node.engine.seq == 174
    assert native_node.engine.checksum() == loop_node.engine.checksum()
    assert native_node.engine.journal_epoch == loop_node.engine.journal_epoch == 2
    loop_segments = segment_paths(tmp_path / "loop" / "journal")
    native_segments = segment_paths(tmp_path / "native" / "journal")
    assert len(loop_segments) > 3  # the script rotates segments
    assert [p.name for p in native_segments] == [p.name for p in loop_segments]
    for ours, theirs in zip(native_segments, loop_segments, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name
    assert native_node.epochs.entries == loop_node.epochs.entries == [(1, 1), (2, 144)]
    assert native_checks == loop_checks == [(103, 12345)]
    assert native_acks == sorted(native_acks)
    assert native_acks[-1] == loop_acks[-1] == 174
    assert native_node.journal.next_seq == loop_node.journal.next_seq == 175


@pytest.mark.parametrize("native", [False, True], ids=["loop", "native"])
@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda: records_frame(6, 8, 1), "records from seq 6"),  # a gap
        (lambda: records_frame(4, 6, 0), "from epoch 0"),  # an older epoch
        (lambda: LINK_HEADER.pack(0, RECORDS), "frame of 0 bytes"),  # a broken frame
    ],
    ids=["gap", "older-epoch", "broken-frame"],
)
def test_records_the_standby_cannot_take_are_refused_and_nothing_is_written(
    tmp_path: Path, native: bool, bad: Callable[[], bytes], reason: str
) -> None:
    async def script(link: StandbyLink, node: Standby, primary: Primary) -> None:
        primary.send(records_frame(1, 3, 1))
        await asyncio.to_thread(primary.acked_through, 3)
        await settle(link, node, 3)
        primary.send(bad())
        kind, payload = await asyncio.to_thread(primary.next_frame)
        assert kind == REFUSE
        assert reason in payload.decode()

    node = until_the_link_ends(tmp_path, native, script)
    assert node.engine.seq == 3
    assert node.journal.next_seq == 4


@pytest.mark.parametrize("native", [False, True], ids=["loop", "native"])
def test_diverged_tells_the_node_and_ends_the_link(tmp_path: Path, native: bool) -> None:
    async def script(link: StandbyLink, node: Standby, primary: Primary) -> None:
        primary.send(link_frame(DIVERGED, SEQ_BODY.pack(0)))

    node = until_the_link_ends(tmp_path, native, script)
    assert node.diverged == [0]


def test_closing_the_native_link_applies_every_batch_its_thread_acknowledged(tmp_path: Path) -> None:
    """The loop is kept busy (blocked) while the thread writes and acknowledges: the batches wait in
    its queue, unapplied. Closing the link (a takeover) applies them before it returns."""
    node = standby(tmp_path, segment_bytes=1 << 20, window=1 << 20, sync_gap=0.0)
    primary = Primary()

    async def scenario() -> None:
        link = await linked(node, True, primary)
        primary.send(records_frame(1, 2, 1))  # the epoch's first frame: handled on the loop
        await asyncio.to_thread(primary.acked_through, 2)
        await settle(link, node, 2)
        for first in range(3, 300, 3):
            primary.send(records_frame(first, first + 2, 1))
        primary.acked_through(299)  # blocking: the loop cannot apply anything meanwhile
        assert node.engine.seq < 299
        link.close()
        assert node.engine.seq == 299
        primary.close()

    asyncio.run(scenario())
    node.journal.close()
    assert node.journal.next_seq == 300
