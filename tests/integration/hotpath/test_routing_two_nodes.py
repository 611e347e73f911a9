"""Two real nodes on loopback, each owning different symbols; the Router sends each order home."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.client import close_pooled_connections
from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.protocol import Ack
from meridian.routing import ROUTES_ENV, Router
from meridian_hotpath.process import NodeProcess

pytestmark = pytest.mark.integration
TwoNodes = tuple[NodeProcess, NodeProcess]


def instruments_file(path: Path, symbols: set[str]) -> Path:
    chosen = [i for i in DEFAULT_INSTRUMENTS if i.symbol in symbols]
    fields = ("symbol", "tick_size", "lot_size", "price_scale", "reference_price", "band_bps")
    path.write_text(json.dumps([{name: getattr(i, name) for name in fields} for i in chosen]))
    return path


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[TwoNodes]:
    equities = instruments_file(tmp_path / "equities.json", {"AAPL", "MSFT"})
    futures = instruments_file(tmp_path / "futures.json", {"ESZ6", "BTCUSD"})
    with (
        NodeProcess.start(tmp_path / "equities", "--instruments", str(equities)) as first,
        NodeProcess.start(tmp_path / "futures", "--instruments", str(futures)) as second,
    ):
        yield first, second
        close_pooled_connections()


def test_router_sends_each_symbol_to_the_node_that_owns_it(
    two_nodes: tuple[NodeProcess, NodeProcess],
) -> None:
    equities, futures = two_nodes
    routes = {
        "default": f"127.0.0.1:{equities.port}",
        "symbols": {"ESZ6": f"127.0.0.1:{futures.port}", "BTCUSD": f"127.0.0.1:{futures.port}"},
    }
    router = Router.from_environment({ROUTES_ENV: json.dumps(routes)})
    orders = [("AAPL", 19_000), ("MSFT", 42_000), ("ESZ6", 600_000), ("BTCUSD", 9_500_000)]
    for n, (symbol, price) in enumerate(orders):
        answer = router.client_for(symbol).submit(f"r{n}", "acct", symbol, Side.BUY, 10, price)
        assert isinstance(answer.messages[0], Ack), (
            symbol,
            answer.messages,
        )  # a node rejects symbols it lacks
    assert router.client_for("AAPL").snapshot().seq == 2
    assert router.client_for("ESZ6").snapshot().seq == 2


def test_moving_a_symbol_is_a_configuration_change(two_nodes: TwoNodes) -> None:
    equities, futures = two_nodes
    before = Router.from_environment({ROUTES_ENV: json.dumps({"default": f"127.0.0.1:{equities.port}"})})
    rejected = before.client_for("ESZ6").submit("m1", "acct", "ESZ6", Side.BUY, 1, 600_000).messages[0]
    assert type(rejected).__name__ == "Reject"  # the equities node does not list ESZ6
    moved = {"default": f"127.0.0.1:{equities.port}", "symbols": {"ESZ6": f"127.0.0.1:{futures.port}"}}
    after = Router.from_environment({ROUTES_ENV: json.dumps(moved)})
    accepted = after.client_for("ESZ6").submit("m1", "acct", "ESZ6", Side.BUY, 1, 600_000).messages[0]
    assert isinstance(accepted, Ack)
