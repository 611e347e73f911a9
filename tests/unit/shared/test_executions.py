"""Fleet-wide trade and execution ids, order ids, and the drop-copy record (meridian.executions)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.domain import Side
from meridian.executions import (
    DROP_COPY_VERSION,
    MAX_NODE_NUMBER,
    TRADE_COUNTER_BITS,
    drop_copy_record,
    execution_id,
    node_number_of,
    order_id_for,
    trade_id_base,
)
from meridian.protocol import Fill, decode_stream, encode

node_numbers = st.integers(0, MAX_NODE_NUMBER)
counters = st.integers(1, (1 << TRADE_COUNTER_BITS) - 1)


def test_the_node_number_is_the_top_16_bits() -> None:
    assert trade_id_base(0) == 0
    assert trade_id_base(7) == 7 << 48
    assert trade_id_base(MAX_NODE_NUMBER) + (1 << 48) - 1 == (1 << 64) - 1  # the largest u64
    assert execution_id(trade_id_base(7) + 1) == "7-1"
    assert execution_id(1) == "0-1"


@pytest.mark.parametrize("number", [-1, MAX_NODE_NUMBER + 1])
def test_a_node_number_outside_16_bits_has_no_base(number: int) -> None:
    with pytest.raises(ValueError, match="node number"):
        trade_id_base(number)


@given(node_numbers, counters)
def test_execution_ids_name_the_node_and_its_counter(number: int, counter: int) -> None:
    trade_id = trade_id_base(number) + counter
    assert node_number_of(trade_id) == number
    assert execution_id(trade_id) == f"{number}-{counter}"
    node, _, count = execution_id(trade_id).partition("-")
    assert trade_id_base(int(node)) + int(count) == trade_id  # the id gives the trade id back


@given(node_numbers, counters, node_numbers, counters)
def test_different_trades_have_different_execution_ids(a: int, x: int, b: int, y: int) -> None:
    same_trade = (a, x) == (b, y)
    assert (execution_id(trade_id_base(a) + x) == execution_id(trade_id_base(b) + y)) == same_trade


def test_order_ids_are_derived_from_account_and_client_order_id() -> None:
    first = order_id_for("alice", "c-1")
    assert first == order_id_for("alice", "c-1")  # every retry names the same order
    assert first.startswith("ord_")
    assert len(first) == len("ord_") + 24
    assert (
        len({first, order_id_for("bob", "c-1"), order_id_for("alice", "c-2"), order_id_for("alic", "ec-1")})
        == 4
    )


accounts = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=16)
fills = st.builds(
    Fill,
    request_id=st.integers(0, 2**64 - 1),
    seq=st.integers(1, 2**63 - 1),
    trade_id=st.builds(lambda n, c: trade_id_base(n) + c, node_numbers, counters),
    symbol=st.sampled_from(["AAPL", "MSFT", "ESZ6"]),
    price=st.integers(1, 2**62),
    quantity=st.integers(1, 2**62),
    aggressor_side=st.sampled_from([int(Side.BUY), int(Side.SELL)]),
    buy_order_id=st.integers(1, 2**63),
    sell_order_id=st.integers(1, 2**63),
    buy_account=accounts,
    sell_account=accounts,
    buy_client_order_id=accounts,
    sell_client_order_id=accounts,
    buy_leaves_quantity=st.integers(0, 2**62),
    sell_leaves_quantity=st.integers(0, 2**62),
)


@given(fills, st.integers(0, 2**63))
def test_the_drop_copy_record_carries_both_sides_and_survives_json(fill: Fill, timestamp_ns: int) -> None:
    record = drop_copy_record(fill, "190.05", timestamp_ns)
    assert json.loads(json.dumps(record)) == record
    assert record["v"] == DROP_COPY_VERSION
    assert record["execution_id"] == execution_id(fill.trade_id)
    assert (record["trade_id"], record["seq"], record["symbol"]) == (fill.trade_id, fill.seq, fill.symbol)
    assert (record["price"], record["price_ticks"], record["quantity"]) == (
        "190.05",
        fill.price,
        fill.quantity,
    )
    assert record["aggressor_side"] == Side(fill.aggressor_side).name
    assert record["buy_order_id"] == order_id_for(fill.buy_account, fill.buy_client_order_id)
    assert record["sell_order_id"] == order_id_for(fill.sell_account, fill.sell_client_order_id)
    assert (record["buy_node_order_id"], record["sell_node_order_id"]) == (
        fill.buy_order_id,
        fill.sell_order_id,
    )
    assert (record["buy_leaves_quantity"], record["sell_leaves_quantity"]) == (
        fill.buy_leaves_quantity,
        fill.sell_leaves_quantity,
    )
    assert record["timestamp_ns"] == timestamp_ns


@given(node_numbers, counters)
def test_a_numbered_trade_id_crosses_the_wire_intact(number: int, counter: int) -> None:
    fill = Fill(1, 2, trade_id_base(number) + counter, "AAPL", 19000, 5, 1, 3, 4, "a", "b", "ca", "cb", 0, 0)
    [(decoded, _)] = decode_stream(encode(fill))[0]
    assert decoded == fill
