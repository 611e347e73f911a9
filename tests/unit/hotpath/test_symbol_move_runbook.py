"""The symbol-move runbook's Lambda steps (functions/runbook_tasks, SymbolMoveFunction in template.yaml)
against two live nodes that require session logon, with the keys, the route table and the order
records in moto: input validation, a whole move step by step, re-runs, verification and a failure
that leaves the symbol halted on both shards."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian.client import HotpathClient, HotpathProtocolError
from meridian.domain import RejectReason, Side
from meridian.executions import order_id_for
from meridian.protocol import Ack, Fill, Reject, SessionRole
from meridian.routing import RouteTable
from meridian.session_auth import new_key
from meridian_local.delivery import lambda_adapter
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.moved_orders import create_orders_table, order_item
from tests.unit.hotpath.node_thread import NodeThread

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "runbook_tasks"
SYMBOL = "AAPL"
OTHER = "MSFT"  # routed to the destination shard already: it makes that shard one of the table's
ROUTES = "/meridian/test/matching/routes"
TABLE = "orders"
REGION = "us-east-1"
ADMIN = new_key("admin", SessionRole.ADMIN)
ORDERS = new_key("orders", SessionRole.ORDERS)


@dataclass
class World:
    source: NodeThread
    destination: NodeThread
    environment: dict[str, str]
    ddb: Any
    ssm: Any

    @property
    def source_node(self) -> str:
        return f"127.0.0.1:{self.source.port}"

    @property
    def destination_node(self) -> str:
        return f"127.0.0.1:{self.destination.port}"

    def move(self, **overrides: str) -> dict[str, str]:
        return {
            "symbol": SYMBOL,
            "source": self.source_node,
            "destination": self.destination_node,
        } | overrides

    def orders(self, node: NodeThread) -> HotpathClient:
        return HotpathClient("127.0.0.1", node.port, credential=ORDERS)

    def admin(self, node: NodeThread) -> HotpathClient:
        return HotpathClient("127.0.0.1", node.port, credential=ADMIN)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def world(start_node: StartNode, tmp_path: Path) -> Iterator[World]:
    keys = [ADMIN, ORDERS]
    source = start_node(data_dir=tmp_path / "source", node_number=1, session_keys=lambda: keys)
    destination = start_node(data_dir=tmp_path / "destination", node_number=2, session_keys=lambda: keys)
    with mock_aws():
        secrets = boto3.client("secretsmanager", REGION)
        arns = {
            key.key_id: secrets.create_secret(
                Name=f"keys/{key.key_id}", SecretString=json.dumps(key.document())
            )["ARN"]
            for key in keys
        }
        ssm, ddb = boto3.client("ssm", REGION), boto3.client("dynamodb", REGION)
        routes = {"default": f"127.0.0.1:{source.port}", "symbols": {OTHER: f"127.0.0.1:{destination.port}"}}
        ssm.put_parameter(Name=ROUTES, Type="String", Value=json.dumps(routes))
        create_orders_table(ddb, TABLE)
        environment = {
            "AWS_DEFAULT_REGION": REGION,
            "MERIDIAN_ROUTES_PARAMETER": ROUTES,
            "MERIDIAN_HOTPATH_KEY_SECRET_ARN": arns["admin"],
            "MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN": arns["orders"],
            "ORDERS_TABLE": TABLE,
        }
        yield World(source, destination, environment, ddb, ssm)


@functools.cache
def _handler() -> lambda_adapter.Handler:
    """SymbolMoveFunction's handler as template.yaml declares it, loaded once (like a warm container)."""
    source = lambda_adapter.template_functions()["SymbolMoveFunction"]
    return lambda_adapter.HandlerRegistry().handler("symbol-move-test", source)


def step(world: World, name: str, move: dict[str, str], **extra: Any) -> tuple[dict[str, Any], bool]:
    """One step through SymbolMoveFunction's handler, as Step Functions invokes it."""
    handler = _handler()
    context = lambda_adapter.LambdaContext("SymbolMoveFunction", 128, "arn:aws:lambda:local", 60)
    event = json.dumps({"step": name, "move": move, **extra})
    payload, errored, _ = lambda_adapter.run_handler(handler, event, world.environment, context)
    answer: dict[str, Any] = json.loads(payload)
    return answer, errored


def ok(world: World, name: str, move: dict[str, str], **extra: Any) -> dict[str, Any]:
    answer, errored = step(world, name, move, **extra)
    assert not errored, answer
    return answer


def run_move(world: World, move: dict[str, str]) -> dict[str, dict[str, Any]]:
    out = {"halt": ok(world, "halt_source", move)}
    out["copy"] = ok(world, "copy", move)
    out["remove"] = ok(world, "remove", move)
    out["point"] = ok(world, "point_records", move)
    out["route"] = ok(world, "switch_route", move)
    out["verify"] = ok(world, "verify", move, copy=out["copy"], remove=out["remove"], point=out["point"])
    out["resume"] = ok(world, "resume_destination", move)
    return out


def place(c: HotpathClient, coid: str, account: str, side: Side, quantity: int, price: int) -> Ack:
    head = c.submit(coid, account, SYMBOL, side, quantity, price).messages[0]
    assert isinstance(head, Ack), head
    return head


def record(world: World, account: str, coid: str, ack: Ack, status: str = "NEW") -> None:
    assert (ack.account, ack.client_order_id) == (account, coid)
    world.ddb.put_item(TableName=TABLE, Item=order_item(ack, world.source_node, ack.seq, status))


def stored(world: World, account: str, coid: str) -> dict[str, Any]:
    key = {"order_id": {"S": order_id_for(account, coid)}}
    item: dict[str, Any] = world.ddb.get_item(TableName=TABLE, Key=key)["Item"]
    return item


def route_of(world: World, symbol: str) -> tuple[tuple[str, int], ...]:
    value = world.ssm.get_parameter(Name=ROUTES)["Parameter"]["Value"]
    return RouteTable.from_json(value).addresses_for(symbol)


def rejected(answer_head: object) -> RejectReason | None:
    return RejectReason(answer_head.reason) if isinstance(answer_head, Reject) else None


def test_a_whole_move_step_by_step_keeps_priority_points_records_and_switches_the_route(world: World) -> None:
    src = world.orders(world.source)
    first = place(src, "s1", "ACC-A", Side.SELL, 100, 19000)
    place(src, "s2", "ACC-B", Side.SELL, 100, 19000)
    place(src, "s3", "ACC-C", Side.SELL, 100, 19010)
    record(world, "ACC-A", "s1", first)  # s2, s3: entered without an order record

    out = run_move(world, world.move())

    assert out["copy"]["orders"] == out["copy"]["copied"] == 3
    assert set(out["copy"]["copies"]) == {"ACC-A|s1", "ACC-B|s2", "ACC-C|s3"}
    assert out["remove"] == {"removed": 3, "finished_meanwhile": 0, "left_on_source": 0}
    assert out["point"] == {"pointed": 1, "not_api_orders": 2, "closed_copies_cancelled": 0}
    assert out["route"] == {"switched": True}
    assert out["verify"] == {"orders": 3, "cancelled_since": 0, "verified": True}
    assert route_of(world, SYMBOL) == (("127.0.0.1", world.destination.port),)
    assert route_of(world, "IBM") == (("127.0.0.1", world.source.port),)  # the default is untouched
    item = stored(world, "ACC-A", "s1")
    assert item["node"]["S"] == world.destination_node
    assert int(item["node_order_id"]["N"]) == out["copy"]["copies"]["ACC-A|s1"]

    # Trading resumed on the destination, in the source's priority; the source refuses the symbol.
    dst = world.orders(world.destination)
    fills = [
        m for m in dst.submit("t", "ACC-Z", SYMBOL, Side.BUY, 300, 19010).messages if isinstance(m, Fill)
    ]
    assert [f.sell_client_order_id for f in fills] == ["s1", "s2", "s3"]
    head = src.submit("late", "ACC-Z", SYMBOL, Side.BUY, 1, 19000).messages[0]
    assert rejected(head) is RejectReason.TRADING_HALTED


def test_every_step_runs_again_and_a_second_whole_run_changes_nothing(world: World) -> None:
    src = world.orders(world.source)
    for n in range(6):
        place(
            src,
            f"o{n}",
            f"ACC-{n}",
            Side.SELL if n % 2 else Side.BUY,
            10 + n,
            19100 + n if n % 2 else 18900 - n,
        )
    move = world.move()
    ok(world, "halt_source", move)
    copy = ok(world, "copy", move)
    assert ok(world, "copy", move)["already_copied"] == 6  # a retried copy: found, not doubled
    remove = ok(world, "remove", move)
    assert ok(world, "remove", move)["removed"] == 0
    point = ok(world, "point_records", move)
    assert ok(world, "switch_route", move) == {"switched": True}
    assert ok(world, "switch_route", move) == {"switched": False}
    ok(world, "verify", move, copy=copy, remove=remove, point=point)
    ok(world, "resume_destination", move)

    again = run_move(world, move)  # the whole runbook run again after it succeeded
    assert (again["copy"]["orders"], again["copy"]["copied"]) == (0, 0)
    assert again["copy"]["copies"] == copy["copies"]  # reported from the destination's book
    assert again["remove"]["removed"] == 0
    assert again["route"] == {"switched": False}
    assert again["verify"]["orders"] == 6
    # The destination trades: an order there is taken.
    assert isinstance(
        world.orders(world.destination).submit("x", "ACC-X", SYMBOL, Side.BUY, 1, 18000).messages[0], Ack
    )


def test_an_order_cancelled_by_its_owner_during_the_move_is_not_resurrected(world: World) -> None:
    src = world.orders(world.source)
    keep = place(src, "keep", "ACC-A", Side.BUY, 100, 18900)
    gone = place(src, "gone", "ACC-B", Side.BUY, 100, 18900)
    record(world, "ACC-A", "keep", keep)
    record(world, "ACC-B", "gone", gone)
    move = world.move()
    ok(world, "halt_source", move)
    copy = ok(world, "copy", move)
    # Its owner cancels it on the source through the order API (cancels are taken while halted):
    src.cancel("ACC-B", SYMBOL, gone.order_id)
    world.ddb.update_item(
        TableName=TABLE,
        Key={"order_id": {"S": order_id_for("ACC-B", "gone")}},
        UpdateExpression="SET #s = :c, leaves_quantity = :z",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": {"S": "CANCELLED"}, ":z": {"N": "0"}},
    )
    remove = ok(world, "remove", move)
    point = ok(world, "point_records", move)
    assert point["closed_copies_cancelled"] == 1
    ok(world, "switch_route", move)
    verified = ok(world, "verify", move, copy=copy, remove=remove, point=point)
    assert verified["orders"] == 1
    book = world.admin(world.destination).export_book(SYMBOL)
    assert [o.client_order_id for o in book.orders] == ["keep"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"destination": "SOURCE"}, "same shard"),
        ({"destination": "127.0.0.1:1"}, "not a shard of the route table"),
        ({"symbol": "TOO-LONG-SYMBOL"}, "symbol"),
        ({"source": "nowhere"}, "host:port"),
        ({"extra": "x"}, "extra"),
        ({"symbol": OTHER}, "neither the source nor the destination"),  # routed to the destination...
    ],
)
def test_bad_input_is_refused_before_anything_is_halted(
    world: World, overrides: dict[str, str], message: str
) -> None:
    move = world.move(**overrides)
    if move["destination"] == "SOURCE":
        move["destination"] = world.source_node
    if move["symbol"] == OTHER:  # ...and asked to move from the destination to a shard it is not on
        move["source"], move["destination"] = world.destination_node, world.source_node
        world.ssm.put_parameter(
            Name=ROUTES,
            Overwrite=True,
            Type="String",
            Value=json.dumps(
                {"default": world.source_node, "symbols": {OTHER: "127.0.0.1:2", "X": world.destination_node}}
            ),
        )
    answer, errored = step(world, "halt_source", move)
    assert errored
    assert answer["errorType"] == "MoveInputError"
    assert message in answer["errorMessage"]
    assert isinstance(
        world.orders(world.source).submit("t", "ACC-A", SYMBOL, Side.BUY, 1, 18000).messages[0], Ack
    )


def test_a_symbol_a_node_does_not_list_is_refused_and_nothing_is_halted(world: World) -> None:
    answer, errored = step(world, "halt_source", world.move(symbol="NOPE"))
    assert errored
    assert answer["errorType"] == "UnknownSymbolError"
    answer, _ = step(world, "nonsense", world.move())
    assert answer["errorType"] == "MoveInputError"
    assert "step must be one of" in answer["errorMessage"]


def test_the_primary_of_a_replicated_shard_is_found(world: World) -> None:
    standby_then_primary = f"127.0.0.1:{_closed_port()},{world.destination_node}"
    world.ssm.put_parameter(
        Name=ROUTES,
        Overwrite=True,
        Type="String",
        Value=json.dumps({"default": world.source_node, "symbols": {OTHER: standby_then_primary}}),
    )
    place(world.orders(world.source), "s1", "ACC-A", Side.SELL, 100, 19000)
    out = run_move(world, world.move(destination=standby_then_primary))
    assert out["verify"]["orders"] == 1
    assert route_of(world, SYMBOL)[1] == ("127.0.0.1", world.destination.port)
    messages = world.orders(world.destination).submit("t", "ACC-Z", SYMBOL, Side.BUY, 100, 19000).messages
    assert [m.sell_client_order_id for m in messages if isinstance(m, Fill)] == ["s1"]


def test_verify_refuses_a_book_that_is_not_the_copy_report(world: World) -> None:
    place(world.orders(world.source), "s1", "ACC-A", Side.SELL, 100, 19000)
    place(world.orders(world.source), "s2", "ACC-B", Side.SELL, 100, 19000)
    move = world.move()
    ok(world, "halt_source", move)
    copy = ok(world, "copy", move)
    remove = ok(world, "remove", move)
    point = ok(world, "point_records", move)
    # The route has not switched yet, and the report is short of one copy and wrong on another's id.
    copy["copies"].pop("ACC-B|s2")
    copy["copies"]["ACC-A|s1"] += 1000
    answer, errored = step(world, "verify", move, copy=copy, remove=remove, point=point)
    assert errored
    assert answer["errorType"] == "MoveVerificationError"
    for problem in ("were not copied", "another order id", "route table sends"):
        assert problem in answer["errorMessage"]
    # The destination is still halted: nothing trades there until the resume step.
    head = world.orders(world.destination).submit("t", "ACC-Z", SYMBOL, Side.BUY, 1, 19000).messages[0]
    assert rejected(head) is RejectReason.TRADING_HALTED


def test_after_a_failure_the_symbol_is_kept_halted_on_both_shards(world: World) -> None:
    place(world.orders(world.source), "s1", "ACC-A", Side.SELL, 100, 19000)
    move = world.move()
    ok(world, "halt_source", move)
    world.destination.stop()  # the destination's node goes away mid-move
    answer, errored = step(world, "copy", move)
    assert errored
    assert answer["errorType"] in {
        "HotpathUnavailable",
        "HotpathConnectionLostError",
    }  # retried by the runbook
    outcome = ok(world, "keep_halted", move)
    assert outcome["source"].startswith("halted at seq")
    assert outcome["destination"].startswith("not halted: HotpathUnavailable")
    src = world.orders(world.source)
    assert (
        rejected(src.submit("t", "ACC-Z", SYMBOL, Side.BUY, 1, 19000).messages[0])
        is RejectReason.TRADING_HALTED
    )
    assert [o.client_order_id for o in world.admin(world.source).export_book(SYMBOL).orders] == ["s1"]


def test_both_keys_are_needed(world: World) -> None:
    del world.environment["MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN"]
    answer, errored = step(world, "halt_source", world.move())
    assert errored
    assert answer["errorType"] == "MoveConfigError"
    assert "orders key" in answer["errorMessage"]


def test_an_admin_session_cannot_place_the_copies(world: World) -> None:
    """Why the function holds two keys: the copies are orders, which only an orders session sends."""
    with pytest.raises(HotpathProtocolError):
        world.admin(world.source).submit("x", "ACC-A", SYMBOL, Side.BUY, 1, 18000)


def test_the_sample_events_run_a_whole_move_and_keep_halted(world: World) -> None:
    """events/runbook_tasks/symbol_move_*.json (for `sam local invoke SymbolMoveFunction`), each
    through the handler in the runbook's order, their sample shards standing for the live nodes."""
    started = json.loads((SAMPLES / "symbol_move_input.json").read_text())
    live = {started["source"]: world.source_node, started["destination"]: world.destination_node}
    place(world.orders(world.source), "s1", "ACC-A", Side.SELL, 100, 19000)
    outputs: dict[str, dict[str, Any]] = {}
    order = ["halt_source", "copy", "remove", "point_records", "switch_route", "verify", "resume_destination"]
    for name in [*order, "keep_halted"]:
        sample = json.loads((SAMPLES / f"symbol_move_{name}.json").read_text())
        assert sample["step"] == name
        assert sample["move"] == started  # every step is given the execution's input
        move = {**sample["move"], **{k: live[sample["move"][k]] for k in ("source", "destination")}}
        extra = {k: v for k, v in sample.items() if k not in ("step", "move")}
        if name == "verify":  # the sample's reports have the live ones' shape; the live ones are checked
            assert {k: set(v) for k, v in extra.items()} == {k: set(outputs[k]) for k in extra}
            extra = {k: outputs[k] for k in extra}
        outputs[{"point_records": "point"}.get(name, name)] = ok(world, name, move, **extra)
    assert outputs["verify"]["verified"] is True
    assert outputs["keep_halted"]["destination"].startswith("halted at seq")
    head = world.orders(world.destination).submit("t", "ACC-Z", SYMBOL, Side.BUY, 1, 19000).messages[0]
    assert rejected(head) is RejectReason.TRADING_HALTED  # halted again by keep_halted, never resumed


def test_a_move_stopped_before_the_route_switch_is_undone_by_moving_back(world: World) -> None:
    """docs/runbooks/symbol-move.md, "Abandoning a move": the runbook run the other way takes the
    copies off the destination and resumes the source, every order where it was."""
    src = world.orders(world.source)
    first = place(src, "s1", "ACC-A", Side.SELL, 100, 19000)
    place(src, "s2", "ACC-B", Side.SELL, 100, 19000)
    record(world, "ACC-A", "s1", first)
    ok(world, "halt_source", world.move())
    ok(world, "copy", world.move())  # ...and the move stopped here, the copies halted on the destination

    back = run_move(world, world.move(source=world.destination_node, destination=world.source_node))

    assert back["copy"]["already_copied"] == 2  # the originals, found on the source as they were
    assert back["remove"]["removed"] == 2  # the copies, cancelled on the destination
    assert back["route"] == {"switched": False}  # it never left the source
    assert stored(world, "ACC-A", "s1")["node_order_id"]["N"] == str(first.order_id)
    assert world.admin(world.destination).export_book(SYMBOL).orders == ()
    fills = [
        m for m in src.submit("t", "ACC-Z", SYMBOL, Side.BUY, 200, 19000).messages if isinstance(m, Fill)
    ]
    assert [f.sell_client_order_id for f in fills] == ["s1", "s2"]


def test_a_new_shard_that_owns_no_symbol_yet_is_a_destination_through_the_fleets_addresses(
    world: World,
) -> None:
    """A shard added to the fleet (ShardCount) owns no symbol, so the route table does not name it:
    the fleet's addresses (the hot path's ShardAddresses output) do."""
    world.ssm.put_parameter(
        Name=ROUTES, Overwrite=True, Type="String", Value=json.dumps({"default": world.source_node})
    )
    move = world.move()
    answer, errored = step(world, "halt_source", move)
    assert errored
    assert "not a shard of the route table" in json.dumps(answer)
    world.environment["MERIDIAN_SHARD_ADDRESSES"] = f"{world.source_node},{world.destination_node}"
    place(world.orders(world.source), "n1", "ACC-A", Side.BUY, 10, 18900)
    moved = run_move(world, move)
    assert route_of(world, SYMBOL) == (("127.0.0.1", world.destination.port),)
    assert moved["verify"]["orders"] == 1
    world.environment["MERIDIAN_SHARD_ADDRESSES"] = "not-an-address"
    answer, errored = step(world, "resume_destination", move)
    assert errored
    assert "MERIDIAN_SHARD_ADDRESSES" in json.dumps(answer)
