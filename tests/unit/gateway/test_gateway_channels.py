"""Channels: subscribing, the book's snapshot and updates, order isolation, bad requests, slow
clients. Updates are fed as the stream carries them (KPL-aggregated node records)."""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from meridian.events import OrderAccepted, OrderCancelled, TradeExecuted
from meridian.protocol import Fill
from meridian_client.stream import BookKeeper
from meridian_gateway.access import Caller
from meridian_gateway.hub import Client
from meridian_gateway.models import SERVER_MESSAGE
from meridian_gateway.orders import OrderUpdates
from meridian_hotpath.marketdata import book_record, trade_record
from tests.gateway_harness import GatewayThread, open_client, receive, send
from tests.unit.gateway.conftest import StartGateway

T0 = 1_772_461_800_000_000_000
WAIT = 10.0


def collect(
    connection: ClientConnection, until: Any, timeout: float = WAIT, found: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Messages until ``until(messages)`` holds (``found``: those already read); each one is checked
    against the published models."""
    found = [] if found is None else found
    deadline = time.monotonic() + timeout
    while not until(found):
        for message in receive(connection, max(0.01, deadline - time.monotonic())):
            SERVER_MESSAGE.validate_python(message)
            found.append(message)
    return found


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == kind]


def subscribe(connection: ClientConnection, *channels: str, request_id: int = 1) -> list[dict[str, Any]]:
    send(connection, {"op": "subscribe", "id": request_id, "channels": list(channels)})
    return collect(
        connection,
        lambda got: any(m["type"] == "subscribed" or m.get("code") == "TOO_MANY_SUBSCRIPTIONS" for m in got),
    )


def channels_of(messages: list[dict[str, Any]]) -> list[str]:
    """The channels the request's ``subscribed`` answer names."""
    (answer,) = of_type(messages, "subscribed")
    channels: list[str] = answer["channels"]
    return channels


def book(
    symbol: str, book_seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]], seq: int = 0
) -> Any:
    return book_record(symbol, seq or book_seq, book_seq, (bids, asks), 10, T0 + book_seq)


def test_book_snapshot_then_updates_keep_a_client_book_equal_to_the_nodes(
    start_gateway: StartGateway,
) -> None:
    gateway = start_gateway()
    gateway.feed([book("AAPL", 1, [(19000, 5)], [(19010, 3)])])
    with open_client(gateway.url, "alice") as alice:
        got = subscribe(alice, "book.AAPL")
        assert channels_of(got) == ["book.AAPL"]
        (snapshot,) = of_type(
            collect(alice, lambda g: of_type(g, "book_snapshot"), found=got), "book_snapshot"
        )
        assert (snapshot["seq"], snapshot["bids"], snapshot["asks"]) == (1, [["190.00", 5]], [["190.10", 3]])
        keeper = BookKeeper()
        keeper.apply(snapshot)
        depths = [
            ([(19000, 5), (18990, 1)], [(19010, 3)]),
            ([(18990, 1)], [(19010, 3), (19020, 8)]),
            ([(18990, 4)], [(19020, 8)]),
        ]
        gateway.feed([book("AAPL", 2 + n, bids, asks) for n, (bids, asks) in enumerate(depths)])
        updates = of_type(collect(alice, lambda g: any(m.get("seq") == 4 for m in g)), "book_update")
    for update in updates:
        assert keeper.apply(update), f"gap at {update}"
    assert keeper.depth() == ([(Decimal("189.90"), 4)], [(Decimal("190.20"), 8)])


def test_trades_arrive_in_order_once_even_when_the_node_resends_them(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    fills = [
        Fill(n, 10 + n, 100 + n, "MSFT", 42000 + n, 5, 1, 1, 2, "a", "b", "x", "y", 0, 0) for n in range(5)
    ]
    with open_client(gateway.url, "bob") as bob:
        subscribe(bob, "trades.MSFT")
        gateway.feed([trade_record(f, T0) for f in fills[:3]])
        gateway.feed([trade_record(f, T0, resent=True) for f in fills])  # a restarted node re-sends
        trades = of_type(collect(bob, lambda g: len(of_type(g, "trade")) >= 5), "trade")
    assert [t["trade_id"] for t in trades] == [100, 101, 102, 103, 104]
    assert trades[0] | {"node_ts": 0} == {
        "type": "trade", "channel": "trades.MSFT", "symbol": "MSFT", "trade_id": 100, "price": "420.00",
        "quantity": 5, "aggressor_side": "BUY", "node_seq": 10, "node_ts": 0,
    }  # fmt: skip


def _accepted(account: str, n: int) -> OrderAccepted:
    return OrderAccepted(
        event_id=f"acc-{account}-{n}", occurred_at=datetime.now(UTC), order_id=f"{account}-o{n}",
        client_order_id=f"c{n}", account=account, symbol="AAPL", side="BUY", order_type="LIMIT",
        time_in_force="GTC", quantity=10, price=Decimal("190.00"), status="NEW", node_seq=n,
    )  # fmt: skip


def _trade(n: int, quantity: int, price: str) -> TradeExecuted:
    return TradeExecuted(
        event_id=f"t{n}", occurred_at=datetime.now(UTC), execution_id=f"0-{n}", symbol="AAPL",
        price=Decimal(price), quantity=quantity, aggressor_side="SELL", buy_order_id="ACC-ALICE-o1",
        sell_order_id="ACC-BOB-o1", buy_account="ACC-ALICE", sell_account="ACC-BOB", buy_client_order_id="c1",
        sell_client_order_id="c1", node_seq=100 + n,
    )  # fmt: skip


def test_each_trader_gets_their_own_orders_and_fills_and_never_anothers(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    updates = OrderUpdates()

    def publish(detail: Any) -> None:
        for account, message in updates.messages(detail):
            gateway.call(functools.partial(gateway.gateway.hub.on_order, account, message))

    with open_client(gateway.url, "alice") as alice, open_client(gateway.url, "bob") as bob:
        subscribe(alice, "orders")
        subscribe(bob, "orders")
        for detail in (
            _accepted("ACC-ALICE", 1),
            _accepted("ACC-BOB", 1),
            _trade(1, 4, "190.00"),
            _trade(2, 6, "190.10"),
        ):
            publish(detail)
        publish(_trade(2, 6, "190.10"))  # the bus delivers at least once: a copy is not a second fill
        cancel = OrderCancelled(
            event_id="x1", occurred_at=datetime.now(UTC), order_id="ACC-BOB-o9", client_order_id="c9",
            account="ACC-BOB", symbol="AAPL", cancelled_quantity=3, reason="USER", node_seq=200,
        )  # fmt: skip
        publish(cancel)
        mine = of_type(collect(alice, lambda g: len(of_type(g, "order")) >= 3), "order")
        theirs = of_type(collect(bob, lambda g: len(of_type(g, "order")) >= 4), "order")
        time.sleep(0.2)  # nothing more may come: the copy of trade 2 and bob's cancel are not alice's
        send(alice, {"op": "ping", "id": 9})
        rest = collect(alice, lambda g: of_type(g, "pong"))
    assert {m["account"] for m in mine} == {"ACC-ALICE"}
    assert {m["account"] for m in theirs} == {"ACC-BOB"}
    assert of_type(rest, "order") == []
    assert [(m["event"], m.get("cumulative_quantity"), m.get("average_price")) for m in mine] == [
        ("accepted", None, None), ("fill", 4, "190"), ("fill", 10, "190.06"),
    ]  # fmt: skip
    assert [m["event"] for m in theirs] == ["accepted", "fill", "fill", "cancelled"]
    assert theirs[-1]["reason"] == "USER"
    assert all("ACC-ALICE" not in str(m) for m in theirs)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"op": "subscribe", "id": 3, "channels": ["book.NOPE"]}, "UNKNOWN_CHANNEL"),
        ({"op": "subscribe", "id": 3, "channels": ["quotes.AAPL"]}, "UNKNOWN_CHANNEL"),
        ({"op": "subscribe", "id": 3, "channels": []}, "BAD_REQUEST"),
        ({"op": "subscribe", "id": 3}, "BAD_REQUEST"),
        ({"op": "dance", "id": 3}, "BAD_REQUEST"),
        ({"op": "ping", "id": -1}, "BAD_REQUEST"),
        ({"op": "resync", "id": 3, "channel": "book.AAPL"}, "NOT_SUBSCRIBED"),
        ([1, 2, 3], "BAD_REQUEST"),
    ],
)
def test_bad_requests_get_an_error_and_the_connection_goes_on(
    start_gateway: StartGateway, request_: Any, code: str
) -> None:
    gateway = start_gateway()
    with open_client(gateway.url, "alice") as alice:
        send(alice, request_)
        (error,) = of_type(collect(alice, lambda g: of_type(g, "error")), "error")
        assert error["code"] == code
        assert error["message"]
        assert channels_of(subscribe(alice, "trades.AAPL")) == ["trades.AAPL"]


def test_forbidden_channels_and_too_many_subscriptions(start_gateway: StartGateway) -> None:
    gateway = start_gateway(max_subscriptions=2)
    with open_client(gateway.url, "olga") as olga, open_client(gateway.url, "alice") as alice:
        got = subscribe(olga, "book.AAPL", "orders")
        errors = {(e["code"], e["channel"]) for e in of_type(got, "error")}
        assert errors == {("FORBIDDEN", "book.AAPL"), ("FORBIDDEN", "orders")}
        assert channels_of(got) == []
        got = subscribe(alice, "book.AAPL", "trades.AAPL", "orders")
        assert of_type(got, "error")[0]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert channels_of(subscribe(alice, "book.AAPL", "orders")) == ["book.AAPL", "orders"]


def test_text_that_is_not_json_binary_frames_and_oversize_frames(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    with open_client(gateway.url, "alice") as alice, open_client(gateway.url, "bob") as bob:
        alice.send("{not json")
        alice.send(b"\x00\x01")
        errors = of_type(collect(alice, lambda g: len(of_type(g, "error")) >= 2), "error")
        assert [e["code"] for e in errors] == ["BAD_REQUEST", "BAD_REQUEST"]
        bob.send("x" * 10_000)
        with pytest.raises(ConnectionClosed) as closed:
            collect(bob, lambda g: False)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert channels_of(subscribe(alice, "orders")) == ["orders"]  # the gateway goes on


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
REQUEST_LIKE = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "unsubscribe", "resync", "ping"])},
    optional={
        "id": st.integers(),
        "channels": st.lists(st.text(max_size=12) | st.sampled_from(["orders", "book.AAPL"]), max_size=60),
        "channel": st.text(max_size=12),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(max_size=300) | st.binary(max_size=300) | (JSON_VALUES | REQUEST_LIKE).map(json.dumps))
def test_fuzzed_requests_get_answers_and_never_break_the_gateway(
    fuzz_gateway: GatewayThread, raw: str | bytes
) -> None:
    """Every request, whatever it is, is answered (at least one message queued) and nothing raises."""
    gateway = fuzz_gateway.gateway

    async def no_send(frame: bytes) -> None:
        raise AssertionError("the fuzz client's queue is read, not sent")

    async def no_close(code: int, reason: str) -> None:
        raise AssertionError(f"closed {code} {reason}")

    def handle() -> int:
        client = Client(Caller("p", "trader", "ACC-ALICE"), no_send, no_close, 100, gateway.metrics)
        gateway.handle(client, raw)
        queued = client.queued
        gateway.hub.remove(client)
        return queued

    assert fuzz_gateway.call(handle) >= 1


@pytest.fixture(scope="module")
def fuzz_gateway() -> Any:
    gateway = GatewayThread()
    yield gateway
    gateway.stop()
