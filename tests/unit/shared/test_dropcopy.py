"""The drop-copy record as consumers read it: exactly the node's record, checked, into trade.executed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from meridian.dropcopy import DropCopyError, parse_drop_copy
from meridian.events import TradeExecuted, parse_detail
from meridian.executions import execution_id, order_id_for, trade_id_base
from tests.dropcopy_factories import record


def _parse(payload: dict[str, Any]) -> TradeExecuted:
    return parse_drop_copy(json.dumps(payload).encode()).trade_executed()


def test_the_nodes_record_becomes_the_trade_event_keyed_by_execution_id() -> None:
    trade = _parse(record(7, buyer="A", seller="B", quantity=40))
    assert (trade.event_id, trade.execution_id) == ("1-7", "1-7")
    assert trade.execution_id == execution_id(trade_id_base(1) + 7)
    assert (trade.symbol, trade.price, trade.quantity, trade.aggressor_side) == (
        "AAPL",
        Decimal("190.25"),
        40,
        "BUY",
    )
    assert (trade.buy_account, trade.sell_account) == ("A", "B")
    assert trade.buy_order_id == order_id_for("A", "b-7")
    assert trade.sell_order_id == order_id_for("B", "s-7")
    assert trade.node_seq == 7
    assert trade.occurred_at == datetime(2026, 3, 2, 14, 30, 0, 7, tzinfo=UTC)  # 7 us after the base
    assert parse_detail(trade.detail_type, trade.model_dump(mode="json")) == trade


def test_the_price_stays_exact_decimal_text() -> None:
    assert _parse(record(1, price="0.000001")).price == Decimal("0.000001")
    assert _parse(record(1, price="123456789.123456789")).price == Decimal("123456789.123456789")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "drop-copy version 2 is not supported (this consumer reads 1)"),
        ({"v": 2, "new_field": "x"}, "drop-copy version 2 is not supported (this consumer reads 1)"),
        ({"v": "1"}, "first at v: Input should be a valid integer"),
        ({"price": 190.25}, "first at price: Value error, price must be the decimal price as text"),
        ({"price": "abc"}, "first at price: Value error, price 'abc' is not a decimal number"),
        ({"price": "NaN"}, "first at price"),
        ({"price": "-1.00"}, "first at price: Input should be greater than 0"),
        ({"quantity": 0}, "first at quantity"),
        ({"quantity": "10"}, "first at quantity: Input should be a valid integer"),
        ({"aggressor_side": 1}, "first at aggressor_side"),
        ({"symbol": ""}, "first at symbol"),
        ({"unexpected": 1}, "first at unexpected: Extra inputs are not permitted"),
        ({"execution_id": "1-8"}, "execution_id '1-8' is not trade 281474976710663's"),
        ({"execution_id": "0-7"}, "is not trade"),
        ({"buy_order_id": "ord_0"}, "buy_order_id is not derived from buy_account and buy_client_order_id"),
        ({"sell_account": "OTHER"}, "sell_order_id is not derived"),
    ],
)
def test_a_record_that_is_not_exactly_a_drop_copy_is_refused_with_its_reason(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(DropCopyError) as refused:
        _parse({**record(7), **change})
    assert reason in refused.value.reason


def test_a_missing_field_is_refused() -> None:
    payload = record(7)
    del payload["timestamp_ns"]
    with pytest.raises(DropCopyError, match="first at timestamp_ns: Field required"):
        _parse(payload)


@pytest.mark.parametrize("data", [b"", b"{not json", b"\x00\xff", b"[1, 2]", b'"text"', b"null"])
def test_what_is_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(DropCopyError) as refused:
        parse_drop_copy(data)
    assert refused.value.reason.startswith("drop-copy record ")


def test_a_trade_between_orders_sent_without_client_order_ids_still_reaches_the_ledger() -> None:
    # The wire lets a client send an empty client order id and the node trades it: its drop copy
    # must not be refused, or the trade would never reach the ledger.
    payload = record(9)
    for side in ("buy", "sell"):
        payload[f"{side}_client_order_id"] = ""
        payload[f"{side}_order_id"] = order_id_for(str(payload[f"{side}_account"]), "")
    trade = _parse(payload)
    assert (trade.buy_client_order_id, trade.sell_client_order_id) == ("", "")
    assert trade.buy_order_id == order_id_for("ACC-BUY", "")


def test_ids_longer_than_the_wire_allows_are_refused() -> None:
    payload = record(9)
    payload["buy_client_order_id"] = "x" * 21
    payload["buy_order_id"] = order_id_for("ACC-BUY", "x" * 21)  # consistent: only the length is wrong
    with pytest.raises(DropCopyError, match="buy_client_order_id"):
        _parse(payload)
