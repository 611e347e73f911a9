"""Answers and the journal: by ack mode, nothing is answered before its record is safe; order holds.

The syncer is native, so these tests gate durability by holding its thread back (a syncer that has
not started yet makes nothing durable) instead of slowing a disk.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meridian.client import HotpathClient
from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.protocol import NewOrder, ProtocolRejectCode, encode
from meridian_hotpath.commit import AckMode, Batch, Committer
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter, read_journal
from meridian_hotpath.journal_sync import JournalSyncer
from meridian_hotpath.recovery import journal_dir
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import WAIT, RawConnection


class Recorder:
    """A channel that records what it was sent, and the durable seq at each send."""

    def __init__(self, journal: JournalWriter) -> None:
        self.journal = journal
        self.sent: list[bytes] = []
        self.durable_at_send: list[int] = []
        self.owed = 0

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        self.durable_at_send.append(self.journal.durable_seq)

    def held(self, answers: int) -> None:
        self.owed += answers

    def released(self, answers: int) -> None:
        self.owed -= answers

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None:
        raise AssertionError("not expected")


def order(n: int) -> bytes:
    return encode(NewOrder(n, f"c{n}", "a", "AAPL", 1, 1, 1, 0, 1, 19000))


async def until(condition: Any) -> None:
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def feed(engine: MatchingEngine, committer: Committer, channel: Recorder, *numbers: int) -> None:
    _, held, _, changes, _, _, _ = engine.feed(b"".join(order(n) for n in numbers))
    committer.hold(channel, held, changes, 0)


def setup(tmp_path: Path, mode: AckMode) -> tuple[MatchingEngine, JournalWriter, Committer, list[Any]]:
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    journal = JournalWriter(tmp_path, 1)
    journal.start_syncer()  # not started: nothing becomes durable until the test says so
    events: list[Any] = []
    committer = Committer(engine, journal, mode, events.append, events.append)
    return engine, journal, committer, events


def test_fsync_mode_answers_once_the_records_are_durable_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, journal, committer, events = setup(tmp_path, AckMode.FSYNC)
        channel = Recorder(journal)
        feed(engine, committer, channel, 1, 2, 3)
        await asyncio.sleep(0)  # the batch is written at the end of this loop iteration
        feed(engine, committer, channel, 4)
        order_seen: list[str] = []
        committer.after_answers(lambda: order_seen.append(f"after {len(channel.sent)} sends"))
        durable = committer.durable(4)
        await asyncio.sleep(0.05)
        assert channel.sent == [], "nothing is answered before it is durable"
        assert not durable.done()
        assert channel.owed == 4
        assert journal.next_seq == 5, "both batches are written (into the page cache)"
        assert journal.syncer is not None
        journal.syncer.start()
        await until(lambda: len(channel.sent) == 2)
        assert all(durable_seq >= 3 for durable_seq in channel.durable_at_send[:1])
        assert channel.durable_at_send[-1] >= 4
        await durable
        assert order_seen == ["after 2 sends"]
        assert channel.owed == 0
        assert [type(event) for event in events] == [Batch, Batch]
        assert [event.last_seq for event in events] == [3, 4]
        committer.close()
        journal.close()
        assert [record.seq for record in read_journal(tmp_path)] == [1, 2, 3, 4]

    asyncio.run(scenario())


def test_async_mode_answers_once_written_and_syncs_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, journal, committer, _ = setup(tmp_path, AckMode.ASYNC)
        channel = Recorder(journal)
        feed(engine, committer, channel, 1, 2)
        await until(lambda: len(channel.sent) == 1)
        assert channel.durable_at_send == [0], "answered before the fdatasync"
        assert [record.seq for record in read_journal(tmp_path)] == [1, 2], "but after the write"
        durable = committer.durable(2)
        assert not durable.done()
        assert journal.syncer is not None
        journal.syncer.start()
        await durable
        assert journal.durable_seq == 2
        committer.close()
        journal.close()

    asyncio.run(scenario())


def test_a_failed_write_answers_nothing_and_reports(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, journal, committer, events = setup(tmp_path, AckMode.ASYNC)

        def broken(data: bytes, last_seq: int) -> None:
            raise OSError(5, "injected")

        journal.write_records = broken  # type: ignore[method-assign]
        channel = Recorder(journal)
        feed(engine, committer, channel, 1)
        await until(lambda: events)
        assert channel.sent == []
        assert isinstance(events[0], OSError)
        assert committer.failed
        committer.close()

    asyncio.run(scenario())


def test_replica_mode_sends_the_batch_to_the_standby_first_and_answers_once_it_holds_it(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        engine, journal, committer, _ = setup(tmp_path, AckMode.REPLICA)
        committer.standby_connected(True)
        forwarded: list[tuple[int, int, int]] = []  # (first, last, records in the local journal then)
        committer.forward = lambda first, last, _: forwarded.append((first, last, journal.next_seq - 1))
        channel = Recorder(journal)
        feed(engine, committer, channel, 1, 2)
        await until(lambda: forwarded)
        assert forwarded == [(1, 2, 0)], "to the standby before the local write (which overlaps its trip)"
        assert [record.seq for record in read_journal(tmp_path)] == [1, 2], "written in the same step"
        await asyncio.sleep(0.01)
        assert channel.sent == [], "no answer before the standby holds the batch"
        committer.replicated(2, 0)
        assert len(channel.sent) == 1
        assert channel.durable_at_send == [0], "neither disk is waited for"
        committer.close()
        journal.close()

    asyncio.run(scenario())


def test_replica_mode_answers_nothing_when_the_local_write_fails_even_once_the_standby_holds_it(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        engine, journal, committer, events = setup(tmp_path, AckMode.REPLICA)
        committer.standby_connected(True)
        forwarded: list[int] = []
        committer.forward = lambda first, last, _: forwarded.append(last)

        def broken(data: bytes, last_seq: int) -> None:
            raise OSError(28, "injected")

        journal.write_records = broken  # type: ignore[method-assign]
        channel = Recorder(journal)
        feed(engine, committer, channel, 1)
        await until(lambda: events)
        assert forwarded == [1]  # the standby has it: a takeover keeps it, unanswered (retried by id)
        committer.replicated(1, 1)
        assert channel.sent == []
        assert committer.failed
        committer.close()

    asyncio.run(scenario())


def test_a_failed_fdatasync_fails_the_committer_and_answers_nothing(tmp_path: Path) -> None:
    """fdatasync on a pipe fails (EINVAL): the syncer stops and the loop hears of it."""

    async def scenario() -> None:
        read_end, write_end = os.pipe()
        try:
            engine = MatchingEngine(DEFAULT_INSTRUMENTS)
            journal = JournalWriter(tmp_path, 1)
            syncer = journal.start_syncer()
            os.dup2(write_end, syncer.fd)  # the segment's fd now names a pipe
            events: list[Any] = []
            committer = Committer(engine, journal, AckMode.FSYNC, events.append, events.append)
            syncer.start()
            channel = Recorder(journal)
            feed(engine, committer, channel, 1)
            await until(lambda: events)
            assert isinstance(events[0], OSError)
            assert "fdatasync" in str(events[0])
            assert channel.sent == []
            assert syncer.error != 0
            assert not syncer.running
            committer.close()
            with pytest.raises(OSError, match="Invalid argument"):
                journal.close()
        finally:
            os.close(read_end)
            os.close(write_end)

    asyncio.run(scenario())


@pytest.fixture
def held_syncers(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every node started in this test makes nothing durable until the returned event is set."""
    gate = threading.Event()
    real_start_syncer = JournalWriter.start_syncer

    class HeldSyncer:
        def __init__(self, real: JournalSyncer) -> None:
            self._real = real

        def start(self) -> None:
            def start_when_open() -> None:
                if gate.wait(WAIT):
                    self._real.start()

            threading.Thread(target=start_when_open, daemon=True).start()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    def held(self: JournalWriter) -> Any:
        syncer = HeldSyncer(real_start_syncer(self))
        self.syncer = syncer  # type: ignore[assignment]
        return syncer

    monkeypatch.setattr(JournalWriter, "start_syncer", held)
    yield gate
    gate.set()


def test_no_client_hears_of_an_order_before_it_is_durable(
    start_node: StartNode, tmp_path: Path, held_syncers: threading.Event
) -> None:
    node = start_node(max_owed=64)
    conn = RawConnection(node.port)
    orders = [NewOrder(n, f"o{n}", "a", "MSFT", 1 + n % 2, 1, 1, 0, 1, 42000) for n in range(1, 20_001)]
    sender = threading.Thread(target=lambda: conn.send(*orders), daemon=True)
    sender.start()
    server = node.node.server
    for _ in range(1000):  # the client owes max_owed answers: its reading pauses
        if node.call(lambda: server.paused_connections) == 1:
            break
        threading.Event().wait(0.01)
    assert node.call(lambda: server.paused_connections) == 1
    processed = node.call(lambda: node.node.node.engine.seq)
    assert 64 <= processed < len(orders)
    conn.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        conn.sock.recv(1)  # matched and written, but not one answer while nothing is durable
    assert len(list(read_journal(journal_dir(tmp_path / "node")))) == processed
    held_syncers.set()
    conn.sock.settimeout(WAIT)
    expected = {o.request_id for o in orders}
    assert conn.read_answers(expected) == expected
    sender.join(WAIT)


def test_async_mode_answers_while_nothing_is_durable_yet(
    start_node: StartNode, held_syncers: threading.Event
) -> None:
    node = start_node(ack_after=AckMode.ASYNC)
    client = HotpathClient("127.0.0.1", node.port)
    answer = client.submit("a1", "acct", "MSFT", Side.BUY, 1, 42000)
    assert answer.messages, "answered once written"
    assert node.call(lambda: node.node.node.journal.durable_seq) == 0
    held_syncers.set()
    node.wait_until(lambda: node.node.node.journal.durable_seq == 1)


def test_heartbeats_are_answered_while_orders_wait_for_the_disk(
    start_node: StartNode, held_syncers: threading.Event
) -> None:
    node = start_node()
    conn = RawConnection(node.port)
    conn.send(NewOrder(1, "o1", "a", "MSFT", 1, 1, 1, 0, 1, 42000))
    client = HotpathClient("127.0.0.1", node.port)
    assert client.heartbeat().request_id > 0  # no state, no journal: answered at once
    conn.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        conn.sock.recv(1)
    held_syncers.set()
    conn.sock.settimeout(WAIT)
    assert conn.read_answers({1}) == {1}
