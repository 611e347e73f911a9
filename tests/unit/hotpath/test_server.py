"""The node over TCP: answers after durability, pipelining, protocol rejects, back-pressure, shutdown."""

from __future__ import annotations

import threading
from itertools import pairwise
from pathlib import Path

import pytest

from meridian.client import HotpathClient
from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.protocol import (
    HEADER,
    Ack,
    Flag,
    Heartbeat,
    NewOrder,
    ProtocolReject,
    ProtocolRejectCode,
    Snapshot,
    encode,
)
from meridian_hotpath.journal import read_journal
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.publisher import InMemorySink
from meridian_hotpath.recovery import journal_dir, recover, snapshot_dir
from meridian_hotpath.server import ConnectionLimits
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.datadir import fresh_engine
from tests.unit.hotpath.node_thread import WAIT, RawConnection


def order(n: int, side: int = 1, price: int = 19000, symbol: str = "AAPL", account: str = "acct") -> NewOrder:
    return NewOrder(n, f"c{n}", account, symbol, side, 1, 1, 0, 1, price)


def test_heartbeat_is_echoed_and_not_journaled(start_node: StartNode) -> None:
    node = start_node()
    beat = HotpathClient("127.0.0.1", node.port).heartbeat()
    assert isinstance(beat, Heartbeat)
    assert node.call(lambda: node.node.node.engine.seq) == 0


def test_an_order_is_answered_only_once_its_record_is_durable(start_node: StartNode, tmp_path: Path) -> None:
    node = start_node()
    client = HotpathClient("127.0.0.1", node.port)
    for n in range(1, 21):
        answer = client.submit(f"c{n}", "acct", "AAPL", Side.BUY if n % 2 else Side.SELL, 1, 19000)
        ack = answer.messages[0]
        assert isinstance(ack, Ack)
        # The record is already in the journal file when the ack arrives.
        journaled = {r.seq: r.request() for r in read_journal(journal_dir(tmp_path / "node"))}
        assert ack.seq in journaled
        assert journaled[ack.seq].client_order_id == f"c{n}"  # type: ignore[union-attr]


def test_every_answer_ends_with_last_and_carries_the_request_id(start_node: StartNode) -> None:
    node = start_node()
    conn = RawConnection(node.port)
    conn.send(order(7, side=2, account="seller"), order(8, side=1, account="buyer"))
    frames = conn.read_frames(3)  # ack, then ack + fill
    assert [(type(m).__name__, m.request_id, bool(f & Flag.LAST)) for m, f in frames] == [
        ("Ack", 7, True),
        ("Ack", 8, False),
        ("Fill", 8, True),
    ]


def test_duplicate_client_order_id_is_flagged(start_node: StartNode) -> None:
    node = start_node()
    client = HotpathClient("127.0.0.1", node.port)
    first = client.submit("dup-1", "acct", "MSFT", Side.BUY, 5, 42000)
    again = client.submit("dup-1", "acct", "MSFT", Side.BUY, 5, 42000)
    assert not first.duplicate
    assert again.duplicate
    assert first.messages[0].order_id == again.messages[0].order_id  # type: ignore[union-attr]


def test_pipelined_requests_all_answered_in_few_commits(start_node: StartNode) -> None:
    node = start_node()
    flow = list(synthetic_flow(seed=3, count=3000))
    answers = HotpathClient("127.0.0.1", node.port).pipeline(flow, window=1000)
    assert len(answers) == 3000
    assert all(answer.frames[-1][1] & Flag.LAST for answer in answers)
    engine = node.node.node.engine
    assert node.call(lambda: engine.checksum()) == fresh_engine(flow).checksum()
    commits = node.node.metrics.registry.get_sample_value("meridian_journal_batch_records_count")
    assert commits is not None
    assert commits < 3000  # group commit: inputs that arrived together shared an fsync


def test_concurrent_connections_each_get_their_own_answers(start_node: StartNode) -> None:
    node = start_node()
    errors: list[BaseException] = []

    def trade(worker: int) -> None:
        try:
            client = HotpathClient("127.0.0.1", node.port)
            orders = [order(0, side=1 + n % 2, account=f"w{worker}") for n in range(50)]
            orders = [o._replace(client_order_id=f"w{worker}-{n}") for n, o in enumerate(orders)]
            for sent, answer in zip(orders, client.pipeline(orders, window=8), strict=True):
                first = answer.messages[0]
                assert isinstance(first, Ack)
                assert first.client_order_id == sent.client_order_id
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=trade, args=(w,)) for w in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    assert errors == []
    assert node.call(lambda: node.node.node.engine.seq) == 16 * 50


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        (HEADER.pack(12, 9, 1, 0, 55), ProtocolRejectCode.UNSUPPORTED_VERSION),
        (HEADER.pack(12, 1, 99, 0, 55), ProtocolRejectCode.UNKNOWN_TYPE),
        (HEADER.pack(4000, 1, 1, 0, 55), ProtocolRejectCode.BAD_LENGTH),
        (encode(order(55))[:-20] + b"\x07" + encode(order(55))[-19:], ProtocolRejectCode.BAD_FIELD),  # side 7
        (encode(Ack(55, 1, 1, "c", "a", "AAPL", 1, 1, 1, 1, 0, 1)), ProtocolRejectCode.NOT_A_REQUEST),
    ],
)
def test_malformed_frame_is_rejected_and_only_that_connection_closes(
    start_node: StartNode, garbage: bytes, code: ProtocolRejectCode
) -> None:
    node = start_node()
    bystander = HotpathClient("127.0.0.1", node.port)
    bystander.submit("b1", "other", "AAPL", Side.BUY, 1, 18990)
    bad = RawConnection(node.port)
    bad.send_bytes(encode(order(54)) + garbage + encode(order(56)))  # a good frame before the bad one
    frames = bad.read_frames(2)
    assert isinstance(frames[0][0], Ack)
    assert frames[0][0].request_id == 54
    assert frames[1] == (ProtocolReject(55, code), Flag.LAST)
    assert bad.at_eof()
    # Nothing after the bad frame was processed, and everyone else keeps trading.
    assert bystander.submit("b2", "other", "AAPL", Side.BUY, 1, 18990).messages[0].seq == 3  # type: ignore[union-attr]
    rejects = node.node.metrics.protocol_rejects.labels(code.name.lower())._value.get()
    assert rejects == 1


def test_a_client_that_does_not_read_is_paused_while_others_trade(start_node: StartNode) -> None:
    node = start_node(write_buffer_high=16 * 1024, socket_send_buffer=8 * 1024)
    slow = RawConnection(node.port, receive_buffer=4096)
    flow = [
        order(n, side=1 + n % 2, account="slow")._replace(client_order_id=f"s{n}") for n in range(1, 20001)
    ]
    sender = threading.Thread(target=lambda: slow.send(*flow), daemon=True)  # blocks once paused
    sender.start()
    server = node.node.server
    paused = False
    for _ in range(1000):
        if node.call(lambda: server.paused_connections) == 1:
            paused = True
            break
        threading.Event().wait(0.01)
    assert paused
    processed_while_paused = node.call(lambda: node.node.node.engine.seq)
    assert processed_while_paused < len(flow)  # the node stopped reading the slow client
    other = HotpathClient("127.0.0.1", node.port)
    assert isinstance(other.submit("fast", "fast", "MSFT", Side.BUY, 1, 42000).messages[0], Ack)
    expected = {o.request_id for o in flow}
    assert slow.read_answers(expected) == expected  # every answer arrives once it reads
    sender.join(WAIT)
    assert node.node.metrics.backpressure_pauses._value.get() >= 1


def test_snapshot_request_writes_a_snapshot_and_answers_its_seq_and_checksum(
    start_node: StartNode, tmp_path: Path
) -> None:
    node = start_node(limits=ConnectionLimits(snapshot_interval=0))  # two requests back to back
    client = HotpathClient("127.0.0.1", node.port)
    flow = list(synthetic_flow(seed=5, count=200))
    client.pipeline(flow)
    snapshot = client.snapshot()
    reference = fresh_engine(flow)
    assert snapshot == Snapshot(snapshot.request_id, 200, reference.checksum())
    assert client.snapshot("AAPL").checksum == reference.book_checksums()["AAPL"]
    assert (snapshot_dir(tmp_path / "node") / "snapshot-00000000000000000200.snap").exists()


def test_periodic_snapshots_follow_snapshot_every(start_node: StartNode, tmp_path: Path) -> None:
    node = start_node(snapshot_every=100)
    HotpathClient("127.0.0.1", node.port).pipeline(list(synthetic_flow(seed=6, count=450)), window=10)
    node.stop()
    seqs = sorted(int(p.name[9:29]) for p in snapshot_dir(tmp_path / "node").glob("*.snap"))
    *periodic, final = seqs
    assert final == 450  # the final snapshot on shutdown
    assert periodic  # at least one on the way (fewer than 4 when a slow write was still in flight)
    assert periodic[0] >= 100
    assert all(later - earlier >= 100 for earlier, later in pairwise(periodic))


def test_shutdown_then_restart_recovers_the_same_state(start_node: StartNode, tmp_path: Path) -> None:
    flow = list(synthetic_flow(seed=8, count=500))
    node = start_node(snapshot_every=120)
    HotpathClient("127.0.0.1", node.port).pipeline(flow, window=64)
    node.stop()
    assert node.exit_code == 0
    engine, report = recover(tmp_path / "node", DEFAULT_INSTRUMENTS)
    assert report.snapshot_seq == 500
    assert report.replayed == 0
    assert engine.checksum() == fresh_engine(flow).checksum()
    again = start_node()
    assert again.node.recovery.seq == 500
    assert HotpathClient("127.0.0.1", again.port).snapshot().checksum == fresh_engine(flow).checksum()


def test_trades_and_book_depth_reach_the_market_data_sink(start_node: StartNode) -> None:
    sink = InMemorySink()
    node = start_node(sink=sink)
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("m1", "a", "AAPL", Side.SELL, 3, 19005)
    client.submit("m2", "b", "AAPL", Side.SELL, 4, 19007)
    client.submit("m3", "b", "AAPL", Side.BUY, 2, 19005)
    node.stop()  # shutdown delivers what is queued
    trades = [r.payload for r in sink.records if not r.droppable]
    assert [(t["symbol"], t["price"], t["quantity"]) for t in trades] == [("AAPL", 19005, 2)]
    books = [r.payload for r in sink.records if r.droppable]
    # Each update is the whole depth, numbered per symbol; the follower may conflate what one
    # journal read changed, so the numbers are contiguous and the last is the book now.
    assert [b["book_seq"] for b in books] == list(range(1, len(books) + 1))
    assert books[-1]["asks"] == [[19005, 1], [19007, 4]]
    assert books[-1]["bids"] == []
    assert all(b["levels"] == 10 and b["type"] == "book" for b in books)


def test_book_updates_carry_the_configured_number_of_levels(start_node: StartNode) -> None:
    sink = InMemorySink()
    node = start_node(sink=sink, depth_levels=2)
    client = HotpathClient("127.0.0.1", node.port)
    for n, price in enumerate((19010, 19008, 19006)):
        client.submit(f"d{n}", "a", "AAPL", Side.SELL, 1 + n, price)
    node.stop()
    books = [r.payload for r in sink.records if r.droppable]
    assert books[-1]["levels"] == 2
    assert books[-1]["asks"] == [[19006, 3], [19008, 2]]  # the third level is beyond the depth asked for
    assert books[-1]["book_seq"] == len(books)
