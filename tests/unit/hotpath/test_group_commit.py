"""Group commit: nothing is answered before its record is durable; order and bounds hold."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.client import HotpathClient
from meridian.protocol import NewOrder, ProtocolRejectCode, encode
from meridian_hotpath.commit import Batch, GroupCommitter
from meridian_hotpath.journal import JournalWriter, SealedBatch, read_journal
from meridian_hotpath.recovery import journal_dir
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import WAIT, RawConnection


class GatedJournal(JournalWriter):
    """A journal whose fdatasync waits until the test opens the gate."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, 1)
        self.gate = threading.Event()
        self.entered = threading.Event()  # a write has begun (and waits at the gate)
        self.writes: list[tuple[int, int]] = []

    def write(self, batch: SealedBatch) -> float:
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise TimeoutError("gate never opened")
        self.writes.append((batch.first_seq, batch.last_seq))
        return super().write(batch)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.released_count = 0

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def released(self, answers: int) -> None:
        self.released_count += answers

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None:
        raise AssertionError("not expected")


def frame(n: int) -> bytes:
    return encode(NewOrder(n, f"c{n}", "a", "AAPL", 1, 1, 1, 0, 1, 19000))


async def settle(condition: object, committer: GroupCommitter) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def test_answers_wait_for_the_write_and_batches_stay_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = GatedJournal(tmp_path)
        released: list[Batch] = []
        failures: list[BaseException] = []
        committer = GroupCommitter(journal, lambda batch, _: released.append(batch), failures.append, 0.0)
        channel = Recorder()
        for n in (1, 2, 3):
            committer.add(n, frame(n), channel, f"answer{n}".encode(), "new_order", 0)
        await settle(journal.entered.is_set, committer)  # the batch is sealed and on the journal thread
        committer.add(4, frame(4), channel, b"answer4", "new_order", 0)  # joins the next batch
        order: list[str] = []
        committer.after_answers(lambda: order.append(f"after, {len(channel.sent)} sends"))
        durable = committer.durable(4)
        assert channel.sent == []
        assert not durable.done()
        journal.gate.set()
        await asyncio.wait_for(durable, WAIT)
        assert channel.sent == [b"answer1answer2answer3", b"answer4"]
        assert order == ["after, 2 sends"]
        assert journal.writes == [(1, 3), (4, 4)]
        assert [b.records for b in released] == [3, 1]
        assert channel.released_count == 4
        assert failures == []
        committer.close()
        journal.close()

    asyncio.run(scenario())
    assert [r.seq for r in read_journal(tmp_path)] == [1, 2, 3, 4]


def test_a_failed_write_answers_nothing_and_reports(tmp_path: Path) -> None:
    class BrokenJournal(JournalWriter):
        def write(self, batch: SealedBatch) -> float:
            raise OSError(5, "Input/output error")

    async def scenario() -> list[BaseException]:
        failures: list[BaseException] = []
        committer = GroupCommitter(BrokenJournal(tmp_path, 1), lambda batch, _: None, failures.append, 0.0)
        channel = Recorder()
        committer.add(1, frame(1), channel, b"answer1", "new_order", 0)
        await settle(lambda: failures, committer)
        assert channel.sent == []
        committer.close()
        return failures

    failures = asyncio.run(scenario())
    assert isinstance(failures[0], OSError)


class TimedJournal(JournalWriter):
    """Reports whatever fsync time the test sets, and on which thread each write ran."""

    def __init__(self, directory: Path, fsync_seconds: float) -> None:
        super().__init__(directory, 1)
        self.fsync_seconds = fsync_seconds
        self.threads: list[str] = []

    def write(self, batch: SealedBatch) -> float:
        super().write(batch)
        self.threads.append(threading.current_thread().name)
        return self.fsync_seconds


def test_fast_fsyncs_commit_on_the_loop_and_slow_ones_move_to_the_journal_thread(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        journal = TimedJournal(tmp_path, fsync_seconds=5e-6)
        committer = GroupCommitter(journal, lambda batch, _: None, lambda error: None, thread_above=300e-6)
        channel = Recorder()
        for n in range(1, 11):
            committer.add(n, frame(n), channel, b"a", "new_order", 0)
            await committer.drain()
        assert not committer.threaded
        journal.fsync_seconds = 5e-3  # the disk slows down
        for n in range(11, 31):
            committer.add(n, frame(n), channel, b"a", "new_order", 0)
            await committer.drain()
        assert committer.fsync_estimate >= committer.thread_above  # i.e. threaded now
        assert len(channel.sent) == 30
        committer.close()
        journal.close()
        return journal.threads

    loop_thread = threading.current_thread().name
    threads = asyncio.run(scenario())
    assert threads[:10] == [loop_thread] * 10
    assert threads[-1] != loop_thread
    assert [r.seq for r in read_journal(tmp_path)] == list(range(1, 31))


def test_an_inline_commit_answers_within_the_same_loop_iteration(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = JournalWriter(tmp_path, 1)
        committer = GroupCommitter(journal, lambda batch, _: None, lambda error: None, thread_above=1.0)
        channel = Recorder()
        committer.add(1, frame(1), channel, b"answer1", "new_order", 0)
        assert channel.sent == []  # not before the end of this iteration's reads
        await asyncio.sleep(0)
        assert channel.sent == [b"answer1"]
        assert journal.durable_seq == 1
        committer.close()
        journal.close()

    asyncio.run(scenario())


@pytest.fixture
def gated_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Make every journal write in this test wait for the returned event."""
    gate = threading.Event()
    real_write = JournalWriter.write

    def gated(self: JournalWriter, batch: SealedBatch) -> float:
        gate.wait(WAIT)
        return real_write(self, batch)

    monkeypatch.setattr(JournalWriter, "write", gated)
    yield gate
    gate.set()


def test_no_client_hears_of_an_order_before_it_is_durable(
    start_node: StartNode, tmp_path: Path, gated_writes: threading.Event
) -> None:
    node = start_node(max_owed=64, journal_thread_above=0.0)  # the gated write blocks the thread
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
        conn.sock.recv(1)  # matched, but not one answer while the journal write is held back
    assert list(read_journal(journal_dir(tmp_path / "node"))) == []
    gated_writes.set()
    conn.sock.settimeout(WAIT)
    expected = {o.request_id for o in orders}
    assert conn.read_answers(expected) == expected
    sender.join(WAIT)


def test_heartbeats_are_answered_while_orders_wait_for_the_disk(
    start_node: StartNode, gated_writes: threading.Event
) -> None:
    node = start_node(journal_thread_above=0.0)
    conn = RawConnection(node.port)
    conn.send(NewOrder(1, "o1", "a", "MSFT", 1, 1, 1, 0, 1, 42000))
    client = HotpathClient("127.0.0.1", node.port)
    assert client.heartbeat().request_id > 0  # no state, no journal: answered at once
    gated_writes.set()
    assert conn.read_frames(1)[0][0].request_id == 1
