"""The node as the tape's one source: every fill, once durable, to the market-data sink as a public
trade record; no snapshot covers a trade the sink has not accepted (top of book is not waited for);
what a stop or crash left undelivered is re-sent on start, marked ``resent``; and nothing the sink
receives names an account or a client order id."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from meridian.client import HotpathClient
from meridian.domain import Side
from meridian.protocol import Admin, AdminAction, Fill, Snapshot, SnapshotRequest
from meridian_hotpath.marketdata import trade_record
from meridian_hotpath.publisher import StreamPublisher, StreamRecord
from meridian_hotpath.snapshot import SnapshotStore
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine
from tests.unit.hotpath.node_thread import NodeThread, RawConnection
from tests.unit.hotpath.test_metrics import get, samples
from tests.unit.hotpath.test_node_dropcopy import INPUTS, fills_of, snapshot_seqs, trade_twice
from tests.unit.hotpath.test_publisher import SwitchableSink

PRIVATE = ("account", "client_order_id")


def payloads(records: list[StreamRecord]) -> list[dict[str, Any]]:
    return [json.loads(record.to_json()) for record in records]


def trades(records: list[StreamRecord]) -> list[dict[str, Any]]:
    """The trade records a sink took, without their send time."""
    found = [payload for payload in payloads(records) if payload["type"] == "trade"]
    return [{k: v for k, v in payload.items() if k != "timestamp_ns"} for payload in found]


def expected(fill: Fill, resent: bool = False) -> dict[str, Any]:
    payload = json.loads(trade_record(fill, 0, resent).to_json())
    return {k: v for k, v in payload.items() if k != "timestamp_ns"}


def assert_public(records: list[StreamRecord]) -> None:
    """No key of any record names an account or a client order id."""
    assert records, "the sink received records"
    for payload in payloads(records):
        private = [key for key in payload if any(word in key for word in PRIVATE)]
        assert not private, f"{payload['type']} record carries {private}"


def market_data_of(node: NodeThread) -> StreamPublisher:
    publisher = node.follower().publisher
    assert publisher is not None
    return publisher


def test_every_fill_reaches_the_market_data_sink_as_a_public_trade_record(start_node: StartNode) -> None:
    sink = SwitchableSink()
    node = start_node(sink=sink, executions_sink=SwitchableSink(), node_number=5)
    seen = trade_twice(node.port, "a")
    node.stop()
    assert trades(sink.records) == [expected(fill) for fill in seen]
    assert all(not record.droppable for record in sink.records if record.payload["type"] == "trade")
    assert {record.partition_key for record in sink.records} == {"AAPL"}
    assert_public(sink.records)


def test_no_account_or_client_order_id_reaches_the_market_data_sink(
    start_node: StartNode, tmp_path: Path
) -> None:
    """A whole order flow, and the re-sends of a restart: trades and book depth are public."""
    build_data_dir(tmp_path / "node", INPUTS, snapshot_at={150})
    sink = SwitchableSink()
    node = start_node(sink=sink, executions_sink=SwitchableSink())
    trade_twice(node.port, "p")
    node.stop()
    kinds = {payload["type"] for payload in payloads(sink.records)}
    assert kinds == {"trade", "book"}
    assert any(payload.get("resent") for payload in payloads(sink.records)), "re-sends were checked too"
    assert_public(sink.records)


def test_a_failing_market_data_sink_holds_snapshots_back_until_it_recovers(
    start_node: StartNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drop copy delivers at once; the market-data sink alone keeps every snapshot since the
    trades from being written, and its recovery lets them through."""
    node: NodeThread | None = None
    writes: list[tuple[int, int | None]] = []  # (snapshot seq, oldest undelivered trade seq)
    real_write = SnapshotStore.write

    def checked_write(store: SnapshotStore, seq: int, checksum: int, payload: bytes) -> Path:
        assert node is not None
        writes.append((seq, market_data_of(node).oldest_undelivered_seq))
        return real_write(store, seq, checksum, payload)

    monkeypatch.setattr(SnapshotStore, "write", checked_write)
    sink = SwitchableSink(all_down=True)
    executions = SwitchableSink()
    node = start_node(sink=sink, executions_sink=executions, snapshot_every=1)
    seen = trade_twice(node.port, "g")
    first_trade_seq = seen[0].seq
    connection = RawConnection(node.port)
    connection.send(SnapshotRequest(77, ""))
    node.wait_until(lambda: sink.calls >= 3 and len(executions.records) == len(seen))
    node.wait_until(lambda: node.follower()._last_capture_seq >= first_trade_seq)  # captured, held back
    assert all(seq < first_trade_seq for seq, _ in writes), writes
    assert all(seq < first_trade_seq for seq in snapshot_seqs(tmp_path / "node"))
    node.wait_until(lambda: node.node.follower.stats.get("meridian_marketdata_trade_failures", 0) >= 2)
    found = samples(get(node, "/metrics")[2])
    assert found[("meridian_marketdata_trades_backlog", ())] == 2
    assert found[("meridian_marketdata_trade_failures", ())] >= 2

    sink.all_down.clear()  # the sink is back: the snapshot follows the delivery
    [(answer, _)] = connection.read_frames(1)
    assert isinstance(answer, Snapshot)
    assert answer.seq == node.call(lambda: node.node.node.engine.seq)
    assert answer.seq in snapshot_seqs(tmp_path / "node")
    assert all(oldest is None or oldest > seq for seq, oldest in writes), writes
    assert trades(sink.records) == [expected(fill) for fill in seen]
    node.wait_until(lambda: node.node.follower.stats.get("meridian_marketdata_trades_backlog") == 0)
    assert samples(get(node, "/metrics")[2])[("meridian_marketdata_trades_backlog", ())] == 0
    connection.close()


def test_a_stop_with_the_market_data_sink_down_skips_the_final_snapshot_and_the_next_start_resends(
    start_node: StartNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "node"
    down = SwitchableSink(all_down=True)
    node = start_node(sink=down, executions_sink=SwitchableSink(), delivery_timeout=0.2)
    seen = trade_twice(node.port, "s")
    with caplog.at_level(logging.WARNING, logger="meridian_hotpath.follower"):
        node.stop()
    assert node.exit_code == 0
    assert down.records == []
    assert all(seq < seen[0].seq for seq in snapshot_seqs(data_dir)), "the final snapshot was skipped"
    [skipped] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"market data from seq {seen[0].seq}" in skipped
    assert "drop copy" not in skipped  # it delivered

    up = SwitchableSink()
    again = start_node(sink=up, executions_sink=SwitchableSink())
    assert again.node.recovery.replayed >= 3  # the journal after the last snapshot
    again.stop()
    assert trades(up.records) == [expected(fill, resent=True) for fill in seen]
    assert snapshot_seqs(data_dir)[-1] == seen[-1].seq  # delivered: this time the snapshot is written

    quiet = SwitchableSink()
    start_node(sink=quiet, executions_sink=SwitchableSink()).stop()
    assert trades(quiet.records) == [], "after a snapshot that covers them, trades are not sent again"


def test_a_start_resends_the_replayed_fills_as_trade_records_ahead_of_new_ones(
    start_node: StartNode, tmp_path: Path
) -> None:
    """Without a drop copy too: the market-data publisher is re-sent to on its own account."""
    data_dir = tmp_path / "node"
    build_data_dir(data_dir, INPUTS, snapshot_at={200}, node_number=4)
    engine = fresh_engine(INPUTS[:200], node_number=4)
    replayed = [fill for request in INPUTS[200:] for fill in fills_of(engine.process(request))]
    assert replayed, "the flow trades after the snapshot"
    sink = SwitchableSink()
    node = start_node(sink=sink)
    assert node.follower().drop_copy is None
    assert (node.node.recovery.snapshot_seq, node.node.recovery.replayed) == (200, 100)
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("n-s", "maker", "MSFT", Side.SELL, 1, 42000)
    new = fills_of(client.submit("n-b", "taker", "MSFT", Side.BUY, 1, 42000).messages)
    node.stop()
    assert trades(sink.records) == [expected(fill, resent=True) for fill in replayed] + [
        expected(fill) for fill in new
    ]


def test_a_halt_and_a_resume_publish_the_book_with_its_node_and_halt(start_node: StartNode) -> None:
    """A symbol moving shards is handed over halted: the projection needs to see the halt."""
    sink = SwitchableSink()
    node = start_node(sink=sink, executions_sink=SwitchableSink(), node_number=7)
    client = HotpathClient("127.0.0.1", node.port)

    def books() -> list[dict[str, Any]]:
        return [p for p in payloads(sink.records) if p["type"] == "book" and p["symbol"] == "AAPL"]

    def published(count: int) -> None:  # updates are conflated: one state at a time
        deadline = time.monotonic() + 10
        while len(books()) < count and time.monotonic() < deadline:
            time.sleep(0.005)

    client.submit("h1", "ACC-A", "AAPL", Side.BUY, 10, 18900)
    published(1)
    client.exchange(Admin(0, "AAPL", AdminAction.HALT))
    published(2)
    client.exchange(Admin(0, "AAPL", AdminAction.RESUME))
    published(3)
    node.stop()
    assert [(p["node"], p["halted"], p["bids"]) for p in books()] == [
        (7, False, [[18900, 10]]),
        (7, True, [[18900, 10]]),  # the levels did not change: the halt alone is news
        (7, False, [[18900, 10]]),
    ]
    assert [p["book_seq"] for p in books()] == [1, 2, 3]
