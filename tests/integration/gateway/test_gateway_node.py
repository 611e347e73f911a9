"""A matching node, its market-data stream, the gateway and clients on loopback: every trade and
book change reaches subscribers in order with no gap, a slow client is dropped without holding up
the others, and a gap's re-sync yields the node's own book."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from meridian.client import HotpathClient
from meridian.domain import Side
from meridian.protocol import Fill
from meridian_client.stream import BookKeeper
from meridian_hotpath.app import NodeConfig
from meridian_hotpath.commit import AckMode
from meridian_hotpath.marketdata import trade_record
from tests.gateway_harness import GatewaySink, GatewayThread, open_client, receive, send
from tests.unit.hotpath.node_thread import NodeThread

pytestmark = pytest.mark.integration
WAIT = 60.0  # a deadline, not a timing: each wait ends as soon as what it waits for arrived


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[NodeThread, GatewayThread]]:
    # The whole flood fits under the memory bound: a client is closed for not reading, never for
    # being late (the readers share this process and its GIL with the gateway and the feed).
    gateway = GatewayThread(max_queue=500, max_backlog=100_000, slow_after_s=2.0, write_limit=4096)
    node = NodeThread(
        NodeConfig(data_dir=tmp_path / "node", port=0, depth_levels=5, ack_after=AckMode.ASYNC),
        GatewaySink(gateway),
    )
    try:
        yield node, gateway
    finally:
        node.stop()
        gateway.stop()


def read_until(connection: Any, until: Any, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while not until(found):
        found.extend(receive(connection, max(0.01, deadline - time.monotonic())))
    return found


def node_depth(node: NodeThread, symbol: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    bids, asks = node.node.node.engine.depth(symbol, 5)  # the matching node's own book
    return [(f"{p / 100:.2f}", q) for p, q in bids], [(f"{p / 100:.2f}", q) for p, q in asks]


def kept_depth(keeper: BookKeeper) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    bids, asks = keeper.depth()
    return [(str(p), q) for p, q in bids], [(str(p), q) for p, q in asks]


def drain(connection: Any) -> None:
    for _ in range(1_000_000):
        connection.recv(timeout=2.0)


def small_socket(port: int) -> socket.socket:
    """A client socket with a small receive buffer: a client that stops reading fills it soon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


class Reader(threading.Thread):
    """Reads a connection as fast as it can, into ``messages``."""

    def __init__(self, connection: Any) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.messages: list[dict[str, Any]] = []
        self.start()

    def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for frame in self.connection:
                self.messages.extend(json.loads(frame))

    def wait_for(self, until: Any) -> None:
        deadline = time.monotonic() + WAIT
        while not until(list(self.messages)) and time.monotonic() < deadline:
            time.sleep(0.01)


def test_trades_and_book_changes_reach_two_clients_in_order_and_a_slow_one_is_dropped(
    world: tuple[NodeThread, GatewayThread],
) -> None:
    node, gateway = world
    channels = ["book.AAPL", "trades.AAPL"]
    with (
        open_client(gateway.url, "alice") as alice,
        open_client(gateway.url, "bob") as bob,
        open_client(gateway.url, "alice", sock=small_socket(gateway.gateway.port)) as slow,
    ):
        for client in (alice, bob, slow):
            send(client, {"op": "subscribe", "id": 1, "channels": channels})
        readers = [Reader(alice), Reader(bob)]
        for reader in readers:
            reader.wait_for(lambda g: any(m["type"] == "book_snapshot" for m in g))
        trader = HotpathClient("127.0.0.1", node.port)
        for n in range(60):  # resting sells around 190.00, each crossed in part by a buy
            trader.submit(f"s{n}", "maker", "AAPL", Side.SELL, 10, 19000 + n % 7)
            trader.submit(f"b{n}", "taker", "AAPL", Side.BUY, 4, 19000 + n % 7)
        trades = node.node.node.engine.trade_counts()["AAPL"]
        truth = node_depth(node, "AAPL")
        for reader in readers:
            keeper = BookKeeper()

            def caught_up(messages: list[dict[str, Any]], keeper: BookKeeper = keeper) -> bool:
                fresh = BookKeeper()
                for message in messages:
                    if message["type"] in ("book_snapshot", "book_update"):
                        fresh.apply(message)
                keeper.__dict__.update(fresh.__dict__)
                return sum(m["type"] == "trade" for m in messages) >= trades and kept_depth(fresh) == truth

            reader.wait_for(caught_up)
            messages = list(reader.messages)
            got = [m["trade_id"] for m in messages if m["type"] == "trade"]
            assert got == sorted(got)
            assert len(got) == len(set(got)) == trades
            check = BookKeeper()
            for message in messages:
                if message["type"] in ("book_snapshot", "book_update"):
                    assert check.apply(message), f"gap at {message}"  # conflated or not, never a gap
            assert kept_depth(check) == truth  # the book each client holds is the node's own
        # The slow client has read nothing; the others got everything meanwhile. Flooding its channel
        # (as a busy day would) fills its socket, then its queue: it is closed 4008, the others not.
        flood = [
            trade_record(
                Fill(1, 10_000 + n, 10**6 + n, "AAPL", 19000, 1, 1, 1, 2, "a", "b", "x", "y", 0, 0), 0
            )
            for n in range(40_000)
        ]
        for start in range(0, len(flood), 100):  # about 100k trades a second
            gateway.feed(flood[start : start + 100])
            time.sleep(0.001)
        deadline = time.monotonic() + WAIT
        while not slow_dropped(gateway) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConnectionClosed) as closed:  # a timeout (2 s; heartbeats are 10 s apart)
            drain(slow)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4008,
            "slow consumer: 500 messages queued, a frame unread for 2 s",
        )
        for reader in readers:
            reader.wait_for(lambda g: sum(m["type"] == "trade" for m in g) >= trades + len(flood))
            assert sum(m["type"] == "trade" for m in reader.messages) == trades + len(flood)
        assert slow_dropped(gateway) == 1  # the readers that kept up were not closed


def slow_dropped(gateway: GatewayThread) -> float:
    registry = gateway.gateway.metrics.registry
    return registry.get_sample_value("meridian_gateway_slow_consumers_dropped_total") or 0.0


def _apply(keeper: BookKeeper, messages: list[dict[str, Any]]) -> bool:
    while messages:
        message = messages.pop(0)
        if message["type"] in ("book_snapshot", "book_update"):
            assert keeper.apply(message)
    return False


def test_a_gap_is_repaired_by_a_resync_that_yields_the_nodes_book(
    world: tuple[NodeThread, GatewayThread],
) -> None:
    node, gateway = world
    trader = HotpathClient("127.0.0.1", node.port)
    with open_client(gateway.url, "bob") as bob:
        send(bob, {"op": "subscribe", "id": 1, "channels": ["book.MSFT"]})
        messages = read_until(bob, lambda g: any(m["type"] == "book_snapshot" for m in g), [])
        keeper = BookKeeper()
        _apply(keeper, messages)
        book_messages = []
        for n in range(4):  # one change at a time: each comes as its own message
            trader.submit(f"m{n}", "maker", "MSFT", Side.BUY, 5 + n, 41990 - 10 * n)
            got = read_until(bob, lambda g: any(m["type"].startswith("book_") for m in g), [])
            book_messages += [m for m in got if m["type"].startswith("book_")]
        _apply(keeper, book_messages[:2])
        assert book_messages[3]["type"] == "book_update"
        assert not keeper.apply(book_messages[3]), "an update after a lost one is a gap"
        send(bob, {"op": "resync", "id": 2, "channel": "book.MSFT"})
        messages = read_until(bob, lambda g: any(m["type"] == "book_snapshot" for m in g), [])
        _apply(keeper, [m for m in messages if m["type"] in ("book_snapshot", "book_update")])
        read_until(bob, lambda g: kept_depth(keeper) == node_depth(node, "MSFT") or _apply(keeper, g), [])
        assert kept_depth(keeper) == node_depth(node, "MSFT")
