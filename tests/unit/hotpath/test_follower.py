"""The journal follower: tails the durable journal across segments, publishes, snapshots, answers the
node, and when the node goes away delivers what is durable before it exits."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from meridian.client import HotpathClient
from meridian.domain import DEFAULT_INSTRUMENTS, RejectReason, Side
from meridian.protocol import (
    Fill,
    ProtocolReject,
    ProtocolRejectCode,
    Reject,
    SnapshotRequest,
    encode,
)
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.follower import (
    DurableSeq,
    Follower,
    FollowerConfig,
    FollowerError,
    JournalTail,
    fills_in,
)
from meridian_hotpath.follower_link import FollowerThread, cpu_list
from meridian_hotpath.journal import JournalWriter, StateChange, segment_paths
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.publisher import InMemorySink
from meridian_hotpath.recovery import journal_dir, snapshot_dir
from meridian_hotpath.snapshot import SnapshotStore
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import RawConnection

FLOW = list(synthetic_flow(seed=77, count=400))


def journal_of(data_dir: Path, requests: Sequence[StateChange], segment_bytes: int = 4096) -> MatchingEngine:
    """Journal ``requests`` as the node does (small segments: many rotations); the engine after them."""
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    journal = JournalWriter(journal_dir(data_dir), 1, segment_bytes)
    journal.start_syncer().start()
    for start in range(0, len(requests), 16):
        engine.feed(b"".join(encode(request) for request in requests[start : start + 16]))
        journal.write_records(engine.take_journal(), engine.seq)
    journal.close()
    return engine


def test_the_tail_follows_the_journal_across_segments_to_the_durable_seq(tmp_path: Path) -> None:
    written = journal_of(tmp_path, FLOW)
    assert len(segment_paths(journal_dir(tmp_path))) > 3
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    tail = JournalTail(journal_dir(tmp_path), engine)
    first = tail.apply_through(150)
    assert engine.seq == 150
    rest = tail.apply_through(400)
    tail.close()
    assert engine.checksum() == written.checksum()
    reference = MatchingEngine(DEFAULT_INSTRUMENTS)
    fills = [m for request in FLOW for m in reference.process(request) if isinstance(m, Fill)]
    assert fills_in(first + rest) == fills


def test_a_follower_whose_node_goes_away_delivers_what_is_durable_snapshots_and_exits(tmp_path: Path) -> None:
    engine = journal_of(tmp_path, FLOW)
    durable = DurableSeq(tmp_path)
    durable.set(engine.seq)
    market_data, executions = InMemorySink(), InMemorySink()
    node_side, follower_side = socket.socketpair()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK)
    # Started by a node that recovered this journal (start_seq): its trades may never have left.
    config = FollowerConfig(tmp_path, DEFAULT_INSTRUMENTS, 10**9, delivery_timeout=5.0, start_seq=engine.seq)
    follower = Follower(config, follower_side, wake_read, market_data, executions)
    node_side.close()  # the node is gone before the follower even starts reading
    assert asyncio.run(follower.run()) == 0
    reference = MatchingEngine(DEFAULT_INSTRUMENTS)
    made = [m.trade_id for request in FLOW for m in reference.process(request) if isinstance(m, Fill)]
    trades = [record for record in market_data.records if record.payload["type"] == "trade"]
    assert [record.payload["trade_id"] for record in trades] == made
    assert len(executions.records) == len(made)
    assert all(record.payload.get("resent") for record in trades), "a start re-sends what it replays"
    [snapshot] = SnapshotStore(snapshot_dir(tmp_path)).files()
    assert snapshot.seq == engine.seq
    durable.close()
    os.close(wake_read)
    os.close(wake_write)


def test_a_snapshot_request_for_an_unknown_symbol_is_rejected(start_node: StartNode) -> None:
    node = start_node()
    connection = RawConnection(node.port)
    connection.send(SnapshotRequest(5, "NOPE"))
    [(answer, _)] = connection.read_frames(1)
    assert answer == Reject(5, 0, 0, "", "NOPE", RejectReason.UNKNOWN_SYMBOL)
    connection.close()


def test_a_snapshot_the_follower_cannot_write_refuses_the_request_and_keeps_serving(
    start_node: StartNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> Path:
        raise OSError(28, "injected: no space left")

    monkeypatch.setattr(SnapshotStore, "write", broken)
    node = start_node()
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("f1", "acct", "AAPL", Side.BUY, 1, 19000)
    connection = RawConnection(node.port)
    connection.send(SnapshotRequest(6, ""))
    [(answer, _)] = connection.read_frames(1)
    assert answer == ProtocolReject(6, ProtocolRejectCode.MALFORMED)
    assert connection.at_eof()
    connection.close()
    node.wait_until(lambda: node.node.follower.stats.get("meridian_snapshots_failed", 0) >= 1)
    assert client.submit("f2", "acct", "AAPL", Side.BUY, 1, 19000).messages  # still serving


@pytest.mark.parametrize(("text", "cpus"), [("0", {0}), ("0,2-3", {0, 2, 3}), ("1-2, 5", {1, 2, 5})])
def test_cpu_lists_read_as_systemd_writes_them(text: str, cpus: set[int]) -> None:
    assert cpu_list(text) == cpus


def test_a_follower_that_cannot_read_the_journal_stops_and_says_why(tmp_path: Path) -> None:
    journal_of(tmp_path, FLOW[:50])
    segment = segment_paths(journal_dir(tmp_path))[0]
    damaged = bytearray(segment.read_bytes())
    damaged[200] ^= 0xFF  # a record the journal says is durable is no longer intact
    segment.write_bytes(bytes(damaged))
    durable = DurableSeq(tmp_path)
    durable.set(50)
    wake = os.pipe2(os.O_NONBLOCK)
    link = FollowerThread(FollowerConfig(tmp_path, DEFAULT_INSTRUMENTS, 10**9, 1.0), wake, None, None)

    async def run() -> None:
        await link.start()
        assert link._thread is not None
        await asyncio.to_thread(link._thread.join, 10)

    asyncio.run(run())
    assert isinstance(link.failure, FollowerError)
    assert "unreadable" in str(link.failure)
    durable.close()
    for end in wake:
        os.close(end)


def limit_of(durable: DurableSeq) -> int | None:
    return durable.limit  # read through a call: each read sees what the other mapping wrote


def test_the_follower_goes_no_further_than_the_limit_a_shards_primary_sets(tmp_path: Path) -> None:
    """The durable seq, within the limit when one is set (0 is a limit too); None lifts it. The page
    is shared: a second mapping (the follower's process) reads what the node wrote."""
    node_side, follower_side = DurableSeq(tmp_path), DurableSeq(tmp_path)
    node_side.set(50)
    assert follower_side.get() == 50
    assert limit_of(follower_side) is None
    node_side.set_limit(0)
    assert (follower_side.get(), limit_of(follower_side)) == (0, 0)
    node_side.set_limit(30)
    assert follower_side.get() == 30
    node_side.set_limit(80)
    assert follower_side.get() == 50  # not past what is durable here either
    node_side.set_limit(None)
    assert (follower_side.get(), limit_of(follower_side)) == (50, None)
    node_side.close()
    follower_side.close()
