"""Decoding the node's market-data records and turning them into MarketData items."""

from __future__ import annotations

import json
from typing import Any

import pytest
from market_data.items import book_item, price_text, trade_item, trade_sort_key
from market_data.records import BookTop, TradePrint, decode

from meridian.consumers import PoisonMessageError
from meridian.protocol import Fill
from meridian_hotpath.marketdata import book_record, top_of_book_record, trade_record
from meridian_local.delivery.lambda_events import eventbridge_event
from tests.pipeline_factories import accepted, trade

T0 = 1_772_461_800_123_456_789


def test_decodes_what_the_node_publishes() -> None:
    fill = Fill(1, 77, 9, "AAPL", 19025, 100, 1, 5, 6, "A", "B", "ca", "cb", 0, 0)
    trade = decode(trade_record(fill, T0).to_json())
    assert trade == TradePrint("AAPL", 77, 9, "0-9", 19025, 100, "BUY", T0, 2)
    top = decode(top_of_book_record("MSFT", 78, (42000, 10, 42010, 3), T0).to_json())
    assert top == BookTop("MSFT", 78, 42000, 10, 42010, 3, ((42000, 10),), ((42010, 3),), T0, 2)


def test_decodes_the_nodes_depth_and_keeps_its_levels_in_the_item() -> None:
    depth = ([(42000, 10), (41990, 4)], [(42010, 3)])
    book = decode(book_record("MSFT", 78, 5, depth, 10, T0, node=3, halted=True).to_json())
    assert book == BookTop(
        "MSFT", 78, 42000, 10, 42010, 3, ((42000, 10), (41990, 4)), ((42010, 3),), T0, 2, 5, 3, True
    )
    item = book_item(book)
    assert (item["node"], item["halted"]) == ({"N": "3"}, {"BOOL": True})
    assert item["bids"] == {
        "L": [{"L": [{"N": "420.00"}, {"N": "10"}]}, {"L": [{"N": "419.90"}, {"N": "4"}]}]
    }
    assert (item["book_seq"], item["bid_price"], item["ask_quantity"]) == (
        {"N": "5"},
        {"N": "420.00"},
        {"N": "3"},
    )
    empty = decode(book_record("MSFT", 79, 6, ([], []), 10, T0).to_json())
    assert isinstance(empty, BookTop)
    assert (empty.bid_price, empty.asks) == (0, ())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bids": None}, "bids and asks"),
        ({"asks": [[1, 2, 3]]}, "asks must be a list"),
        ({"book_seq": -1}, "book_seq"),
        ({"bids": [["1", 2]]}, "bids must be a list"),
    ],
)
def test_a_bad_book_record_is_poison_with_its_reason(change: dict[str, Any], reason: str) -> None:
    payload = book_record("AAPL", 3, 1, ([(19000, 1)], []), 10, T0).payload | change
    payload = {k: v for k, v in payload.items() if v is not None}
    with pytest.raises(PoisonMessageError, match=reason):
        decode(json.dumps(payload).encode())


def test_optional_scale_execution_id_and_depth() -> None:
    payload = {
        "type": "top_of_book",
        "symbol": "NEW1",
        "seq": 1,
        "bid_price": 5,
        "bid_quantity": 1,
        "ask_price": 0,
        "ask_quantity": 0,
        "bids": [[5, 1], [4, 7]],
        "timestamp_ns": T0,
        "price_scale": 0,
    }
    book = decode(json.dumps(payload).encode())
    assert isinstance(book, BookTop)
    assert (book.bids, book.asks, book.price_scale) == (((5, 1), (4, 7)), (), 0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "trade"}', "no symbol"),
        (b'{"type": "depth", "symbol": "AAPL"}', "unknown record type"),
        (
            b'{"type": "trade", "symbol": "ZZZ", "seq": 1, "trade_id": 1, "price": 1, "quantity": 1, '
            b'"aggressor_side": 1, "timestamp_ns": 1}',
            "unknown instrument",
        ),
        (
            b'{"type": "trade", "symbol": "AAPL", "seq": 1, "trade_id": 1, "price": 1.5, "quantity": 1, '
            b'"aggressor_side": 1, "timestamp_ns": 1}',
            "'price'",
        ),
        (
            b'{"type": "trade", "symbol": "AAPL", "seq": 1, "trade_id": 1, "price": 1, "quantity": 1, '
            b'"aggressor_side": 3, "timestamp_ns": 1}',
            "aggressor_side",
        ),
        (b'{"type": "top_of_book", "symbol": "AAPL", "seq": -1}', "non-negative integer"),
        (
            b'{"type": "top_of_book", "symbol": "AAPL", "seq": 1, "bid_price": 1, "bid_quantity": 1, '
            b'"ask_price": 1, "ask_quantity": 1, "timestamp_ns": 1, "asks": [[1]]}',
            "asks",
        ),
    ],
)
def test_poison_records_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessageError, match=reason):
        decode(data)


@pytest.mark.parametrize(
    ("units", "scale", "text"), [(19025, 2, "190.25"), (5, 2, "0.05"), (600000, 2, "6000.00"), (7, 0, "7")]
)
def test_prices_are_exact_decimal_strings(units: int, scale: int, text: str) -> None:
    assert price_text(units, scale) == text


def test_trade_item_keys_sort_by_sequence_then_trade() -> None:
    trade = TradePrint("AAPL", 77, 9, "9", 19025, 100, "SELL", T0, 2)
    item: dict[str, Any] = trade_item(trade, ttl_s=3600)
    assert item["pk"] == {"S": "SYMBOL#AAPL"}
    assert item["sk"] == {"S": trade_sort_key(77, 9)}
    assert trade_sort_key(77, 10) > trade_sort_key(77, 9)
    assert trade_sort_key(78, 1) > trade_sort_key(77, 10)
    assert item["price"] == {"N": "190.25"}
    assert item["expires_at"] == {"N": str(T0 // 1_000_000_000 + 3600)}
    assert item["occurred_at"]["S"] == "2026-03-02T14:30:00.123456+00:00"


def test_book_item_marks_an_empty_side_null() -> None:
    item = book_item(BookTop("MSFT", 5, 0, 0, 42010, 3, (), ((42010, 3),), T0, 2))
    assert item["bid_price"] == {"NULL": True}
    assert item["asks"] == {"L": [{"L": [{"N": "420.10"}, {"N": "3"}]}]}
    assert item["bids"] == {"L": []}
    assert item["node_seq"] == {"N": "5"}


def test_a_re_sent_trade_is_the_same_print_marked_resent() -> None:
    fill = Fill(1, 77, 9, "AAPL", 19025, 100, 1, 5, 6, "A", "B", "ca", "cb", 0, 0)
    first = decode(trade_record(fill, T0).to_json())
    again = decode(trade_record(fill, T0 + 5_000_000_000, resent=True).to_json())
    assert isinstance(first, TradePrint)
    assert isinstance(again, TradePrint)
    assert (first.resent, again.resent) == (False, True)
    assert again._replace(resent=False, timestamp_ns=T0) == first
    assert trade_item(again, 60)["sk"] == trade_item(first, 60)["sk"]


def test_resent_must_be_a_boolean() -> None:
    payload = json.loads(
        trade_record(Fill(1, 7, 9, "AAPL", 1, 1, 1, 5, 6, "A", "B", "a", "b", 0, 0), T0).to_json()
    )
    with pytest.raises(PoisonMessageError, match="resent must be true or false"):
        decode(json.dumps(payload | {"resent": 1}).encode())


@pytest.mark.parametrize("event", [trade("1-9", node_seq=77), accepted("A")], ids=["trade", "accepted"])
def test_lifecycle_events_do_not_belong_on_the_stream(event: Any) -> None:
    """Only the nodes write the stream; an EventBridge envelope (with accounts) is a poison record."""
    with pytest.raises(PoisonMessageError, match="unknown record type"):
        decode(json.dumps(eventbridge_event(event)).encode())
