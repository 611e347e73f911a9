"""The node's drop copy: every fill, once durable, to the executions sink; no snapshot covers an
execution the sink has not accepted; what a stop or crash left undelivered is re-sent on start."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from meridian.client import HotpathClient
from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.executions import drop_copy_record, execution_id, trade_id_base
from meridian.protocol import Fill, Message, Snapshot, SnapshotRequest
from meridian_hotpath.cli import build_parser
from meridian_hotpath.journal import read_journal
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.publisher import StreamPublisher, StreamRecord
from meridian_hotpath.recovery import journal_dir, snapshot_dir
from meridian_hotpath.snapshot import SnapshotStore
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine
from tests.unit.hotpath.node_thread import NodeThread, RawConnection
from tests.unit.hotpath.test_metrics import get, samples
from tests.unit.hotpath.test_publisher import SwitchableSink

INSTRUMENTS = {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}
INPUTS = list(synthetic_flow(seed=31, count=300))


def fills_of(messages: list[Message]) -> list[Fill]:
    return [message for message in messages if isinstance(message, Fill)]


def trade_twice(port: int, prefix: str) -> list[Fill]:
    """A resting sell and two buys against it (two trades); the fills the client was answered."""
    client = HotpathClient("127.0.0.1", port)
    client.submit(f"{prefix}-s", "maker", "AAPL", Side.SELL, 10, 19005)
    seen = fills_of(client.submit(f"{prefix}-b1", "taker", "AAPL", Side.BUY, 3, 19005).messages)
    return seen + fills_of(client.submit(f"{prefix}-b2", "taker", "AAPL", Side.BUY, 2, 19010).messages)


def without_timestamp(payload: dict[str, int | str]) -> dict[str, int | str]:
    return {key: value for key, value in payload.items() if key != "timestamp_ns"}


def expected(fill: Fill) -> dict[str, int | str]:
    price = str(INSTRUMENTS[fill.symbol].to_price(fill.price))
    return without_timestamp(drop_copy_record(fill, price, 0))


def executions(records: list[StreamRecord]) -> list[dict[str, int | str]]:
    return [without_timestamp(json.loads(record.to_json())) for record in records]


def snapshot_seqs(data_dir: Path) -> list[int]:
    return [snapshot.seq for snapshot in SnapshotStore(snapshot_dir(data_dir)).files()]


def drop_copy_of(node: NodeThread) -> StreamPublisher:
    publisher = node.follower().drop_copy
    assert publisher is not None
    return publisher


def test_every_fill_reaches_the_drop_copy_keyed_by_symbol_once_durable(
    start_node: StartNode, tmp_path: Path
) -> None:
    sink = SwitchableSink()
    node = start_node(executions_sink=sink, node_number=5)
    seen = trade_twice(node.port, "a")
    assert [f.trade_id for f in seen] == [trade_id_base(5) + 1, trade_id_base(5) + 2]
    node.stop()
    assert executions(sink.records) == [expected(fill) for fill in seen]
    assert [record.partition_key for record in sink.records] == ["AAPL", "AAPL"]
    assert [json.loads(record.to_json())["execution_id"] for record in sink.records] == ["5-1", "5-2"]
    assert all(not record.droppable for record in sink.records)
    journaled = {record.seq for record in read_journal(journal_dir(tmp_path / "node"), 0)}
    assert {record.seq for record in sink.records} <= journaled


def test_no_snapshot_covers_an_undelivered_execution(
    start_node: StartNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every snapshot write checks the invariant at the moment it happens."""
    node: NodeThread | None = None
    writes: list[tuple[int, int | None]] = []  # (snapshot seq, oldest undelivered execution seq)
    real_write = SnapshotStore.write

    def checked_write(store: SnapshotStore, seq: int, checksum: int, payload: bytes) -> Path:
        assert node is not None
        writes.append((seq, drop_copy_of(node).oldest_undelivered_seq))
        return real_write(store, seq, checksum, payload)

    monkeypatch.setattr(SnapshotStore, "write", checked_write)
    sink = SwitchableSink(all_down=True)
    node = start_node(executions_sink=sink, snapshot_every=1)
    seen = trade_twice(node.port, "g")
    first_trade_seq = seen[0].seq
    connection = RawConnection(node.port)
    connection.send(SnapshotRequest(77, ""))
    node.wait_until(lambda: sink.calls >= 3)  # the drop copy keeps failing...
    # ...so every snapshot since the trades is held back: the follower captured them, wrote none.
    node.wait_until(lambda: node.follower()._last_capture_seq >= first_trade_seq)
    assert all(seq < first_trade_seq for seq, _ in writes), writes
    assert all(seq < first_trade_seq for seq in snapshot_seqs(tmp_path / "node"))
    stats = node.node.follower.stats  # the follower reports its publishers every second
    node.wait_until(lambda: stats.get("meridian_dropcopy_failures", 0) >= 2)
    found = samples(get(node, "/metrics")[2])
    assert found[("meridian_dropcopy_backlog", ())] == 2
    assert found[("meridian_dropcopy_failures", ())] >= 2
    assert found[("meridian_dropcopy_published", ())] == 0

    sink.all_down.clear()  # the sink is back: the snapshot follows the delivery
    [(answer, _)] = connection.read_frames(1)
    assert isinstance(answer, Snapshot)
    assert answer.seq == node.call(lambda: node.node.node.engine.seq)
    assert answer.seq in snapshot_seqs(tmp_path / "node")
    assert all(oldest is None or oldest > seq for seq, oldest in writes), writes
    assert executions(sink.records) == [expected(fill) for fill in seen]
    node.wait_until(lambda: node.node.follower.stats.get("meridian_dropcopy_published") == 2)
    found = samples(get(node, "/metrics")[2])
    assert (found[("meridian_dropcopy_backlog", ())], found[("meridian_dropcopy_published", ())]) == (0, 2)
    connection.close()


def test_a_stop_with_the_sink_down_skips_the_final_snapshot_and_the_next_start_resends(
    start_node: StartNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "node"
    down = SwitchableSink(all_down=True)
    node = start_node(executions_sink=down, delivery_timeout=0.2, node_number=3)
    seen = trade_twice(node.port, "s")
    node.stop()
    assert node.exit_code == 0
    assert down.records == []
    assert all(seq < seen[0].seq for seq in snapshot_seqs(data_dir)), "the final snapshot was skipped"

    up = SwitchableSink()
    again = start_node(executions_sink=up)
    assert again.node.recovery.replayed >= 3  # the journal after the last snapshot
    again.stop()
    assert executions(up.records) == [expected(fill) for fill in seen]
    assert [json.loads(r.to_json())["execution_id"] for r in up.records] == ["3-1", "3-2"]
    assert snapshot_seqs(data_dir)[-1] == seen[-1].seq  # delivered: this time the snapshot is written

    quiet = SwitchableSink()
    start_node(executions_sink=quiet).stop()
    assert quiet.records == [], "after a snapshot that covers them, executions are not sent again"


def test_a_start_resends_the_fills_of_every_input_replayed_ahead_of_new_ones(
    start_node: StartNode, tmp_path: Path
) -> None:
    """The journal after the newest snapshot may hold trades whose executions never left (a crash
    between the fsync and the sink); the node re-sends all of them, in order, before anything new."""
    data_dir = tmp_path / "node"
    build_data_dir(data_dir, INPUTS, snapshot_at={200}, node_number=4)
    engine = fresh_engine(INPUTS[:200], node_number=4)
    replayed = [fill for request in INPUTS[200:] for fill in fills_of(engine.process(request))]
    assert replayed, "the flow trades after the snapshot"
    sink = SwitchableSink()
    node = start_node(executions_sink=sink)
    assert (node.node.recovery.snapshot_seq, node.node.recovery.replayed) == (200, 100)
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("n-s", "maker", "MSFT", Side.SELL, 1, 42000)
    new = fills_of(client.submit("n-b", "taker", "MSFT", Side.BUY, 1, 42000).messages)
    node.stop()
    assert executions(sink.records) == [expected(fill) for fill in replayed + new]
    assert {json.loads(r.to_json())["execution_id"].split("-")[0] for r in sink.records} == {"4"}


def test_without_an_executions_stream_the_node_warns_once(
    start_node: StartNode, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="meridian_hotpath.app"):
        node = start_node()
        trade_twice(node.port, "w")
        node.stop()
    warnings = [r.getMessage() for r in caplog.records if "executions are not published" in r.getMessage()]
    assert len(warnings) == 1
    assert node.follower().drop_copy is None


def test_serve_takes_an_executions_stream_and_a_node_number() -> None:
    serve = ["serve", "--data-dir", "d", "--port", "0"]
    args = build_parser().parse_args(
        [*serve, "--executions-stream", "meridian-executions", "--node-number", "12"]
    )
    assert (args.executions_stream, args.node_number) == ("meridian-executions", 12)
    assert execution_id(trade_id_base(args.node_number) + 1) == "12-1"
