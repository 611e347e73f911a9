"""Moving a symbol between two live nodes: BOOK_EXPORT, then ``meridian.symbol_move``'s steps.

The moved orders keep their price-time priority (and orders after the move queue behind them),
nothing is lost or doubled, every step can run again, and an order its owner cancels on the source
during the move is not resurrected on the destination.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from meridian import symbol_move
from meridian.client import BookExportRefusedError, HotpathClient
from meridian.domain import OrderType, RejectReason, Side, TimeInForce
from meridian.executions import order_id_for
from meridian.protocol import (
    Ack,
    Admin,
    AdminAction,
    BookExport,
    Fill,
    NewStopOrder,
    ProtocolReject,
    ProtocolRejectCode,
    SessionRole,
)
from meridian.routing import RouteTable
from meridian.session_auth import PERM_TRADE
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.moved_orders import create_orders_table, order_item
from tests.unit.hotpath.node_thread import NodeThread, RawConnection

SYMBOL = "AAPL"


@pytest.fixture
def pair(start_node: StartNode, tmp_path: Path) -> tuple[NodeThread, NodeThread]:
    source = start_node(data_dir=tmp_path / "source", node_number=1)
    destination = start_node(data_dir=tmp_path / "destination", node_number=2)
    return source, destination


def client(node: NodeThread) -> HotpathClient:
    return HotpathClient("127.0.0.1", node.port)


def place(c: HotpathClient, coid: str, account: str, side: Side, quantity: int, price: int) -> Ack:
    head = c.submit(coid, account, SYMBOL, side, quantity, price).messages[0]
    assert isinstance(head, Ack), head
    return head


def stop(c: HotpathClient, coid: str, account: str, side: Side, quantity: int, stop_price: int) -> Ack:
    request = NewStopOrder(
        0, coid, account, SYMBOL, side, OrderType.MARKET, TimeInForce.GTC, 0, quantity, 0, stop_price
    )
    head = c.exchange(request).messages[0]
    assert isinstance(head, Ack), head
    return head


def move(source: HotpathClient, destination: HotpathClient) -> None:
    symbol_move.halt(source, SYMBOL)
    symbol_move.copy_book(source, destination, destination, SYMBOL)
    symbol_move.remove_from_source(source, source, destination, destination, SYMBOL)
    symbol_move.resume(destination, SYMBOL)


def test_book_export_needs_a_halt_and_lists_orders_in_priority(pair: tuple[NodeThread, NodeThread]) -> None:
    src = client(pair[0])
    place(src, "b1", "ACC-A", Side.BUY, 100, 18990)
    place(src, "b2", "ACC-B", Side.BUY, 200, 19000)
    place(src, "b3", "ACC-C", Side.BUY, 300, 18990)
    place(src, "a1", "ACC-A", Side.SELL, 400, 19010)
    stop(src, "s1", "ACC-B", Side.BUY, 50, 19100)
    with pytest.raises(BookExportRefusedError) as refused:
        src.export_book(SYMBOL)
    assert refused.value.reason is RejectReason.SYMBOL_NOT_HALTED
    with pytest.raises(BookExportRefusedError) as unknown:
        src.export_book("NOPE")
    assert unknown.value.reason is RejectReason.UNKNOWN_SYMBOL

    symbol_move.halt(src, SYMBOL)
    book = src.export_book(SYMBOL)
    assert [o.client_order_id for o in book.orders] == ["b2", "b1", "b3", "a1", "s1"]
    assert [o.leaves_quantity for o in book.orders] == [200, 100, 300, 400, 50]
    assert book.orders[-1].stop_price == 19100
    assert book.checksum == pair[0].call(lambda: pair[0].node.node.engine.book_checksums()[SYMBOL]) & (
        (1 << 64) - 1
    )


def test_only_an_admin_session_may_export(start_node: StartNode, tmp_path: Path) -> None:
    node = start_node(data_dir=tmp_path / "n")
    raw = RawConnection(node.port)
    node.wait_until(lambda: len(node.node.server.connections) == 1)
    (connection,) = node.node.server.connections
    node.call(lambda: setattr(connection, "permissions", PERM_TRADE))
    raw.send(BookExport(7, SYMBOL))
    assert raw.read_frames(1)[0][0] == ProtocolReject(7, ProtocolRejectCode.NOT_PERMITTED)
    assert SessionRole.ADMIN  # the role whose keys runbooks log on with


def test_a_moved_book_keeps_price_time_priority(pair: tuple[NodeThread, NodeThread]) -> None:
    src, dst = client(pair[0]), client(pair[1])
    place(src, "old-1", "ACC-A", Side.SELL, 100, 19000)
    place(src, "old-2", "ACC-B", Side.SELL, 100, 19000)
    place(src, "old-3", "ACC-C", Side.SELL, 100, 19010)
    place(src, "old-4", "ACC-D", Side.SELL, 100, 19000)
    taker = src.submit("t0", "ACC-E", SYMBOL, Side.BUY, 30, 19000).messages  # old-1: 70 left
    assert [m.quantity for m in taker if isinstance(m, Fill)] == [30]

    move(src, dst)
    place(dst, "new-1", "ACC-F", Side.SELL, 100, 19000)  # after the move: behind old-1, 2 and 4

    fills = [
        m for m in dst.submit("t1", "ACC-E", SYMBOL, Side.BUY, 1000, 19010).messages if isinstance(m, Fill)
    ]
    assert [(f.sell_client_order_id, f.quantity, f.price) for f in fills] == [
        ("old-1", 70, 19000),
        ("old-2", 100, 19000),
        ("old-4", 100, 19000),
        ("new-1", 100, 19000),
        ("old-3", 100, 19010),
    ]
    symbol_move.halt(src, SYMBOL)
    assert src.export_book(SYMBOL).orders == ()  # nothing left working on the source


def test_every_step_runs_again_without_doubling(pair: tuple[NodeThread, NodeThread]) -> None:
    src, dst = client(pair[0]), client(pair[1])
    for n in range(20):
        place(
            src,
            f"o{n}",
            f"ACC-{n % 3}",
            Side.BUY if n % 2 else Side.SELL,
            10 + n,
            18900 - n if n % 2 else 19100 + n,
        )
    stop(src, "stop", "ACC-9", Side.SELL, 5, 18000)
    symbol_move.halt(src, SYMBOL)
    before = src.export_book(SYMBOL)

    first = symbol_move.copy_book(src, dst, dst, SYMBOL)
    again = symbol_move.copy_book(src, dst, dst, SYMBOL)  # a retried step: every copy found, none added
    assert (first.copied, first.already_copied) == (21, 0)
    assert (again.copied, again.already_copied) == (0, 21)
    assert first.destination == again.destination
    copies = dst.export_book(SYMBOL)
    assert symbol_move.same_book(before.orders, copies.orders)

    removed = symbol_move.remove_from_source(src, src, dst, dst, SYMBOL)
    assert (removed.removed, removed.finished_meanwhile, removed.left_on_source) == (21, 0, 0)
    rerun = symbol_move.remove_from_source(src, src, dst, dst, SYMBOL)
    assert (rerun.removed, rerun.left_on_source) == (0, 0)
    assert symbol_move.same_book(before.orders, dst.export_book(SYMBOL).orders)
    # The copy step after the removal finds nothing left to copy and leaves the copies alone.
    late = symbol_move.copy_book(src, dst, dst, SYMBOL)
    assert (late.orders, late.copied) == (0, 0)
    assert symbol_move.same_book(before.orders, dst.export_book(SYMBOL).orders)


def copied_keep_and_gone(src: HotpathClient, dst: HotpathClient) -> Ack:
    """Two orders on the source ("keep", "gone"), both copied to the destination; "gone"'s Ack."""
    place(src, "keep", "ACC-A", Side.BUY, 100, 18900)
    gone = place(src, "gone", "ACC-B", Side.BUY, 100, 18900)
    symbol_move.halt(src, SYMBOL)
    symbol_move.copy_book(src, dst, dst, SYMBOL)
    return gone


def test_an_order_its_owner_cancels_before_the_removal_reads_the_source_is_left_to_the_records_step(
    pair: tuple[NodeThread, NodeThread],
) -> None:
    src, dst = client(pair[0]), client(pair[1])
    gone = copied_keep_and_gone(src, dst)
    # Its owner cancels it on the source (cancels are taken while halted) after it was copied.
    src.cancel("ACC-B", SYMBOL, gone.order_id)

    report = symbol_move.remove_from_source(src, src, dst, dst, SYMBOL)
    assert (report.removed, report.finished_meanwhile) == (1, 0)  # export after the cancel: 1 left
    # The copy of the cancelled order is still on the destination: the records step cancels it
    # (see test below); remove_from_source cancels copies of orders it finds finished itself.
    assert {o.client_order_id for o in dst.export_book(SYMBOL).orders} == {"keep", "gone"}


def test_a_cancel_racing_the_removal_takes_the_copy_too(
    pair: tuple[NodeThread, NodeThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = client(pair[0]), client(pair[1])
    gone = copied_keep_and_gone(src, dst)
    real_export = src.export_book

    def export_then_owner_cancels(symbol: str):  # type: ignore[no-untyped-def]
        book = real_export(symbol)
        monkeypatch.setattr(src, "export_book", real_export)
        src.cancel("ACC-B", SYMBOL, gone.order_id)  # between the export and the move's own cancel
        return book

    monkeypatch.setattr(src, "export_book", export_then_owner_cancels)
    report = symbol_move.remove_from_source(src, src, dst, dst, SYMBOL)
    assert (report.removed, report.finished_meanwhile, report.left_on_source) == (1, 1, 0)
    assert [o.client_order_id for o in dst.export_book(SYMBOL).orders] == ["keep"]


def test_a_destination_trading_the_symbol_is_refused(pair: tuple[NodeThread, NodeThread]) -> None:
    src, dst = client(pair[0]), client(pair[1])
    place(src, "mine", "ACC-A", Side.BUY, 100, 18900)
    place(dst, "theirs", "ACC-Z", Side.SELL, 100, 19100)
    symbol_move.halt(src, SYMBOL)
    with pytest.raises(symbol_move.SymbolMoveError, match="already trades"):
        symbol_move.copy_book(src, dst, dst, SYMBOL)
    assert [o.client_order_id for o in src.export_book(SYMBOL).orders] == ["mine"]  # untouched
    # The destination, halted only to read its book, trades on as it did.
    assert isinstance(dst.submit("after", "ACC-Z", SYMBOL, Side.SELL, 1, 19100).messages[0], Ack)


def test_a_stop_order_moves_and_still_fires(pair: tuple[NodeThread, NodeThread]) -> None:
    src, dst = client(pair[0]), client(pair[1])
    place(src, "ask", "ACC-A", Side.SELL, 100, 19000)
    stop(src, "stop", "ACC-B", Side.BUY, 40, 19000)
    move(src, dst)
    messages = dst.submit("trigger", "ACC-C", SYMBOL, Side.BUY, 10, 19000).messages
    fills = [m for m in messages if isinstance(m, Fill)]
    assert [(f.buy_client_order_id, f.quantity) for f in fills] == [("trigger", 10), ("stop", 40)]


def test_halt_and_resume_answer_with_their_seq(pair: tuple[NodeThread, NodeThread]) -> None:
    src = client(pair[0])
    first = symbol_move.halt(src, SYMBOL)
    assert symbol_move.resume(src, SYMBOL) == first + 1
    refused = src.exchange(Admin(0, "NOPE", AdminAction.HALT)).messages[-1]
    assert getattr(refused, "reason", None) == RejectReason.UNKNOWN_SYMBOL
    with pytest.raises(symbol_move.SymbolMoveError, match="UNKNOWN_SYMBOL"):
        symbol_move.halt(src, "NOPE")


def test_order_records_follow_their_copies_and_the_route_switches(
    pair: tuple[NodeThread, NodeThread],
) -> None:
    src, dst = client(pair[0]), client(pair[1])
    with mock_aws():
        ddb, ssm = boto3.client("dynamodb", "us-east-1"), boto3.client("ssm", "us-east-1")
        create_orders_table(ddb, "orders")
        acks = {coid: place(src, coid, f"ACC-{coid}", Side.BUY, 100, 18900) for coid in ("a", "b", "c")}
        for n in range(30):  # the source's seq runs ahead of the destination's
            src.cancel("ACC-x", SYMBOL, place(src, f"x{n}", "ACC-x", Side.BUY, 1, 18890).order_id)
        source_seq = pair[0].call(lambda: pair[0].node.node.engine.seq)
        ddb.put_item(TableName="orders", Item=order_item(acks["a"], "127.0.0.1:1", source_seq))
        ddb.put_item(TableName="orders", Item=order_item(acks["b"], "127.0.0.1:1", source_seq))  # c: none
        symbol_move.halt(src, SYMBOL)
        symbol_move.copy_book(src, dst, dst, SYMBOL)
        symbol_move.remove_from_source(src, src, dst, dst, SYMBOL)
        # b's owner cancelled it through the order API on the source before the removal took it:
        ddb.update_item(
            TableName="orders",
            Key={"order_id": {"S": order_id_for("ACC-b", "b")}},
            UpdateExpression="SET #s = :c, leaves_quantity = :z",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":c": {"S": "CANCELLED"}, ":z": {"N": "0"}},
        )
        destination = f"127.0.0.1:{pair[1].port}"
        report = symbol_move.point_records(ddb, "orders", dst, dst, destination, SYMBOL)
        assert (report.pointed, report.not_api_orders, report.closed_copies_cancelled) == (1, 1, 1)
        book = dst.export_book(SYMBOL)
        assert {o.client_order_id for o in book.orders} == {"a", "c"}  # b's copy cancelled
        item = ddb.get_item(TableName="orders", Key={"order_id": {"S": order_id_for("ACC-a", "a")}})["Item"]
        copy_a = next(o for o in book.orders if o.client_order_id == "a")
        assert (item["node"]["S"], int(item["node_order_id"]["N"]), int(item["last_seq"]["N"])) == (
            destination,
            copy_a.order_id,
            book.seq - 1,  # the export's seq: b's copy was cancelled after it
        )
        assert int(item["last_seq"]["N"]) < source_seq  # lowered to the destination's: fills there apply

        ssm.put_parameter(
            Name="/routes", Type="String", Value=json.dumps({"default": f"127.0.0.1:{pair[0].port}"})
        )
        assert symbol_move.switch_route(ssm, "/routes", SYMBOL, destination) is True
        assert symbol_move.switch_route(ssm, "/routes", SYMBOL, destination) is False
        table = RouteTable.from_json(ssm.get_parameter(Name="/routes")["Parameter"]["Value"])
        assert table.address_for(SYMBOL) == ("127.0.0.1", pair[1].port)
        assert table.address_for("MSFT") == ("127.0.0.1", pair[0].port)


def test_a_record_behind_its_copy_stops_the_records_step_with_an_error_the_runbook_retries(
    pair: tuple[NodeThread, NodeThread],
) -> None:
    src, dst = client(pair[0]), client(pair[1])
    with mock_aws():
        ddb = boto3.client("dynamodb", "us-east-1")
        create_orders_table(ddb, "orders")
        ack = place(src, "a", "ACC-a", Side.BUY, 100, 18900)
        item = order_item(ack, "127.0.0.1:1", ack.seq)
        item["leaves_quantity"] = {"N": "60"}  # a fill's write not there yet: 60 open, not 100
        ddb.put_item(TableName="orders", Item=item)
        symbol_move.halt(src, SYMBOL)
        symbol_move.copy_book(src, dst, dst, SYMBOL)
        destination = f"127.0.0.1:{pair[1].port}"
        with pytest.raises(symbol_move.RecordBehindError):
            symbol_move.point_records(ddb, "orders", dst, dst, destination, SYMBOL)
        assert [o.client_order_id for o in dst.export_book(SYMBOL).orders] == ["a"]  # copy kept
