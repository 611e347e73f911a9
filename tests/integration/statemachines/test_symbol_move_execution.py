"""The symbol-move state machine end to end (moto server executing statemachines/symbol-move.asl.json
as template.yaml declares it, SymbolMoveFunction in-process) between two matching node processes
that require session logon: the book moves in priority, the order record and the route follow,
and a failed move stops with the symbol halted on both shards."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import RejectReason, Side
from meridian.executions import order_id_for
from meridian.orders.items import record_to_item
from meridian.orders.record import OrderRecord
from meridian.protocol import Ack, Fill, Reject
from meridian.routing import RouteTable
from meridian_local.cloud.runbook_stack import RunbookStack, build, next_environment
from meridian_local.drills.drill_keys import admin_key, orders_key

pytestmark = pytest.mark.integration
MOVE = "SymbolMoveStateMachine"
SYMBOL = "AAPL"


class Shards:
    def __init__(self, stack: RunbookStack, source: Any, destination: Any, routes: str) -> None:
        self.stack, self.source, self.destination, self.routes = stack, source, destination, routes

    def orders(self, node: Any) -> HotpathClient:
        return HotpathClient("127.0.0.1", node.port, credential=orders_key())

    def admin(self, node: Any) -> HotpathClient:
        return HotpathClient("127.0.0.1", node.port, credential=admin_key())

    def move(self) -> dict[str, str]:
        return {"symbol": SYMBOL, "source": self.source.address, "destination": self.destination.address}

    def route_of(self, symbol: str) -> tuple[tuple[str, int], ...]:
        value = self.stack.client("ssm").get_parameter(Name=self.routes)["Parameter"]["Value"]
        return RouteTable.from_json(value).addresses_for(symbol)


@pytest.fixture
def shards(moto: Any, start_node: Any, tmp_path: Path) -> Any:
    source, destination = start_node(tmp_path / "source"), start_node(tmp_path / "destination")
    environment = next_environment()
    routes = f"/meridian/{environment}/matching/routes"
    probe = RunbookStack(moto, "us-east-1", environment)
    secrets = probe.client("secretsmanager")
    arns = {
        key.key_id: secrets.create_secret(
            Name=f"{environment}/{key.key_id}", SecretString=json.dumps(key.document())
        )["ARN"]
        for key in (admin_key(), orders_key())
    }
    table = {"default": source.address, "symbols": {"MSFT": destination.address}}
    probe.client("ssm").put_parameter(Name=routes, Type="String", Value=json.dumps(table))
    keys = {
        "MERIDIAN_HOTPATH_KEY_SECRET_ARN": arns[admin_key().key_id],
        "MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN": arns[orders_key().key_id],
    }
    stack = build(
        moto,
        name=environment,
        environment={"SymbolMoveFunction": keys},
        outputs={"HotpathStack.RoutesParameterName": routes},
    )
    yield Shards(stack, source, destination, routes)
    close_pooled_connections()
    stack.close()


def place(c: HotpathClient, coid: str, account: str, quantity: int, price: int) -> Ack:
    head = c.submit(coid, account, SYMBOL, Side.SELL, quantity, price).messages[0]
    assert isinstance(head, Ack), head
    return head


def refused(c: HotpathClient) -> RejectReason | None:
    head = c.submit("probe", "ACC-P", SYMBOL, Side.BUY, 1, 19000).messages[0]
    return RejectReason(head.reason) if isinstance(head, Reject) else None


def test_a_move_runs_end_to_end_and_trading_resumes_on_the_destination(shards: Shards) -> None:
    src = shards.orders(shards.source)
    first = place(src, "s1", "ACC-A", 100, 19000)
    place(src, "s2", "ACC-B", 100, 19000)
    now = datetime.now(UTC)
    record = OrderRecord(
        order_id=order_id_for("ACC-A", "s1"),
        account="ACC-A",
        client_order_id="s1",
        symbol=SYMBOL,
        side="SELL",
        type="LIMIT",
        time_in_force="GTC",
        quantity=100,
        price_ticks=19000,
        status="NEW",
        created_at=now,
        updated_at=now,
        leaves_quantity=100,
        node=shards.source.address,
        node_order_id=first.order_id,
        last_seq=first.seq,
    )
    ddb = shards.stack.client("dynamodb")
    orders_table = shards.stack.refs["OrdersTable"]
    ddb.put_item(TableName=orders_table, Item=record_to_item(record))

    execution = shards.stack.start(MOVE, shards.move())
    result = shards.stack.wait(execution, timeout=120)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    assert (output["orders_moved"], output["copied"], output["route_switched"]) == (2, 2, True)
    assert output["point"] == {"pointed": 1, "not_api_orders": 1, "closed_copies_cancelled": 0}
    assert shards.stack.states_entered(execution) == [
        "Begin",
        "HaltSource",
        "Copy",
        "Remove",
        "PointRecords",
        "LetInFlightRequestsFinish",
        "SwitchRoute",
        "Verify",
        "ResumeDestination",
        "Moved",
    ]
    assert shards.route_of(SYMBOL) == (("127.0.0.1", shards.destination.port),)
    item = ddb.get_item(TableName=orders_table, Key={"order_id": {"S": order_id_for("ACC-A", "s1")}})["Item"]
    assert item["node"]["S"] == shards.destination.address
    assert refused(src) is RejectReason.TRADING_HALTED  # the source never resumes
    fills = shards.orders(shards.destination).submit("t", "ACC-Z", SYMBOL, Side.BUY, 200, 19000).messages
    assert [f.sell_client_order_id for f in fills if isinstance(f, Fill)] == ["s1", "s2"]


def test_a_failed_move_stops_with_the_symbol_halted_on_both_shards(shards: Shards) -> None:
    place(shards.orders(shards.source), "s1", "ACC-A", 100, 19000)
    place(shards.orders(shards.destination), "theirs", "ACC-Z", 100, 19100)  # the destination trades it

    result = shards.stack.run(MOVE, shards.move(), timeout=120)

    assert result["status"] == "FAILED"
    assert result["error"] == "SymbolMoveError"
    assert "stopped at Copy" in result["cause"]
    assert "already trades" in result["cause"]
    assert "halted on both shards" in result["cause"]
    for node in (shards.source, shards.destination):
        assert refused(shards.orders(node)) is RejectReason.TRADING_HALTED
    assert [o.client_order_id for o in shards.admin(shards.source).export_book(SYMBOL).orders] == ["s1"]
    assert shards.route_of(SYMBOL) == (("127.0.0.1", shards.source.port),)


def test_refused_input_halts_nothing(shards: Shards) -> None:
    result = shards.stack.run(MOVE, {**shards.move(), "destination": "127.0.0.1:1"}, timeout=60)
    assert result["status"] == "FAILED"
    assert result["error"] == "MoveInputError"
    assert "nothing was halted" in result["cause"]
    assert isinstance(
        shards.orders(shards.source).submit("ok", "ACC-A", SYMBOL, Side.BUY, 1, 18000).messages[0], Ack
    )
