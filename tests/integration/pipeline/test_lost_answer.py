"""The lost answer: the node traded, the order API never heard, and the ledger still gets the trades.

A real matching node on loopback writes its drop copy to a Kinesis stream on moto. The order API
(its real handler) sends an order whose answer is lost after the node accepted and traded it: the
API records the order UNCONFIRMED and answers 503; the client's retry re-sends it and the node
answers DUPLICATE, without the fills. Then the drop-copy path runs as deployed: the executions
function turns the stream into trade.executed.v1 on the bus, a rule puts them on the ledger queue,
the ledger function writes PostgreSQL. After a node crash and restart, which re-sends the trades it
replays, the ledger holds exactly the node's trades, each once, and positions add up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from orders_api import services
from orders_api.config import Settings
from orders_api.dal.hotpath import HotpathGateway, MatchingGateway, NodeAnswer, NodeOutcomeUnknown

from meridian import db
from meridian.dropcopy import parse_drop_copies
from meridian.protocol import Message, NewOrder
from meridian.routing import Router, RouteTable, StaticRoutes
from meridian_hotpath.process import NodeProcess
from meridian_local.apigateway.order_function import load_handler
from meridian_local.delivery.pollers import KinesisPoller, Poller, SqsPoller, drain
from meridian_local.delivery.pollers import load_handler as load_function
from tests.orders_api_fixtures import local_services
from tests.unit.orders_api.harness import ACCOUNT_A, ACCOUNT_B, TRADER_B, Answer, call, seed

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
STREAM, BUS, NODE_NUMBER = "executions-lost-answer", "trading-lost-answer", 3


@dataclass
class LosingGateway:
    """The real node behind a network that loses the answer to the client order ids in ``lose``:
    the request reaches the node (which acts on it), the answer is read, then dropped."""

    inner: MatchingGateway
    lose: set[str] = field(default_factory=set)
    lost: list[NodeAnswer] = field(default_factory=list)

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        answer = self.inner.send(symbol, request)
        if isinstance(request, NewOrder) and request.client_order_id in self.lose:
            self.lose.discard(request.client_order_id)
            self.lost.append(answer)
            raise NodeOutcomeUnknown("timed out waiting for the node's answer")
        return answer

    def nodes(self) -> list[str]:
        return self.inner.nodes()

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        return self.inner.send_to(node, request)

    def ping(self) -> bool:
        return self.inner.ping()


@dataclass
class World:
    api: Callable[..., Answer]
    gateway: LosingGateway
    start_node: Callable[[], NodeProcess]
    deliver: Callable[[], int]
    kinesis: Any
    ledger_url: str
    node: NodeProcess | None = None


def _queue_for_trades(aws: Callable[[str], Any]) -> str:
    """The template's LedgerTradesRule on the bus: trade.executed.v1 -> the ledger queue."""
    sqs, events = aws("sqs"), aws("events")
    url = str(sqs.create_queue(QueueName="ledger-lost-answer")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["meridian.executions"], "detail-type": ["trade.executed.v1"]}
    events.put_rule(Name="ledger-trades", EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ledger-trades", EventBusName=BUS, Targets=[{"Id": "ledger", "Arn": arn}])
    return url


@pytest.fixture
def world(
    aws: Callable[[str], Any],
    moto_endpoint: str,
    ledger_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Meridian")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    kinesis, sqs = aws("kinesis"), aws("sqs")
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    settings = Settings(event_bus_name=BUS, large_order_notional=1_000_000, default_max_open_orders=50)
    clients = {name: aws(name) for name in ("dynamodb", "events", "sqs")}
    seed(clients, settings)  # the order API's tables, principals and the bus
    ledger_queue = _queue_for_trades(aws)
    node_env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    flags = ("--executions-stream", STREAM, "--node-number", str(NODE_NUMBER), "--host", "127.0.0.1")
    ports: list[int] = []

    def start_node() -> NodeProcess:
        # The same port across restarts, as behind the NLB: the gateway's routes stay valid.
        extra = ("--port", str(ports[0])) if ports else ()
        node = NodeProcess.start(tmp_path / "node", *flags, *extra, env=node_env)
        ports[:] = [node.port]
        return node

    node = start_node()
    table = RouteTable.from_json(json.dumps({"default": f"127.0.0.1:{node.port}"}))
    gateway = LosingGateway(HotpathGateway(Router(StaticRoutes(table), timeout=2.0)))
    services.use(local_services(settings, clients, gateway))
    api_handler = load_handler()
    db.reset_shared_connection()
    executions = load_function(REPO / "functions" / "executions", "app.lambda_handler")
    ledger = load_function(REPO / "functions" / "ledger", "app.lambda_handler")
    pollers: list[Poller] = [
        KinesisPoller(kinesis, STREAM, executions, batch_size=100, bisect_on_error=True),
        SqsPoller(sqs, ledger_queue, ledger, retry_visibility_s=0),
    ]
    world = World(
        api=lambda *args, **kwargs: call(api_handler, *args, **kwargs),
        gateway=gateway,
        start_node=start_node,
        deliver=lambda: drain(pollers, max_rounds=50, idle_rounds=2),
        kinesis=kinesis,
        ledger_url=ledger_database_url,
        node=node,
    )
    try:
        yield world
    finally:
        if world.node is not None:
            world.node.terminate()
        services.reset()
        db.reset_shared_connection()


def _drop_copy(kinesis: Any) -> list[Any]:
    """Every drop-copy record on the executions stream (aggregated ones split), re-sends included."""
    records = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += [copy for r in answer["Records"] for copy in parse_drop_copies(r["Data"])]
            iterator = answer.get("NextShardIterator") if answer["Records"] else None
    return records


def _until(done: Callable[[], bool], deliver: Callable[[], int], what: str, deadline_s: float = 30.0) -> None:
    """Run the event delivery until ``done`` (the node publishes off its matching path)."""
    deadline = time.monotonic() + deadline_s
    while not done():
        assert time.monotonic() < deadline, f"never happened: {what}"
        if not deliver():
            time.sleep(0.05)


def _ledger(url: str) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], tuple[int, Decimal]]]:
    with psycopg.connect(url) as conn:
        trades = conn.execute(
            "SELECT execution_id, symbol, price, quantity, buy_account, sell_account FROM trades"
            " ORDER BY execution_id"
        ).fetchall()
        positions = {
            (account, symbol): (int(quantity), cost)
            for account, symbol, quantity, cost in conn.execute(
                "SELECT account, symbol, quantity, cost_basis FROM positions"
            )
        }
    return trades, positions


def test_the_trades_of_a_lost_answer_reach_the_ledger_once(world: World) -> None:
    api = world.api

    def limit(side: str, quantity: int, price: str, client_order_id: str) -> dict[str, Any]:
        return {
            "symbol": "AAPL",
            "side": side,
            "quantity": quantity,
            "price": price,
            "client_order_id": client_order_id,
        }

    assert api("POST", "/orders", body=limit("SELL", 10, "190.00", "bob-1"), who=TRADER_B).status == 201
    assert api("POST", "/orders", body=limit("SELL", 5, "190.10", "bob-2"), who=TRADER_B).status == 201

    world.gateway.lose.add("alice-1")
    lost = api("POST", "/orders", body=limit("BUY", 12, "190.10", "alice-1"))
    assert lost.status == 503, lost.body
    [answer] = world.gateway.lost
    assert sum(1 for m in answer.messages if type(m).__name__ == "Fill") == 2  # the node did trade

    retry = api("POST", "/orders", body=limit("BUY", 12, "190.10", "alice-1"))
    assert retry.status == 201, retry.body
    assert (retry.body["status"], retry.body["filled_quantity"]) == ("FILLED", 12)
    assert retry.body["fills"] == []  # the node's DUPLICATE answer carries no fills

    more = api("POST", "/orders", body=limit("BUY", 3, "190.10", "alice-2"))
    assert [f["quantity"] for f in more.body["fills"]] == [3]

    expected = [
        (f"{NODE_NUMBER}-1", "AAPL", Decimal("190.00"), 10, ACCOUNT_A, ACCOUNT_B),
        (f"{NODE_NUMBER}-2", "AAPL", Decimal("190.10"), 2, ACCOUNT_A, ACCOUNT_B),
        (f"{NODE_NUMBER}-3", "AAPL", Decimal("190.10"), 3, ACCOUNT_A, ACCOUNT_B),
    ]
    assert more.body["fills"][0]["execution_id"] == f"{NODE_NUMBER}-3"
    _until(
        lambda: len(_ledger(world.ledger_url)[0]) == len(expected), world.deliver, "the trades in the ledger"
    )

    # A crash and restart: the node replays its journal and re-sends what it replayed.
    assert world.node is not None
    sent_before = len(_drop_copy(world.kinesis))
    world.node.kill()
    world.node = world.start_node()
    _until(
        lambda: len(_drop_copy(world.kinesis)) > sent_before, world.deliver, "the re-sends after a restart"
    )
    world.deliver()

    trades, positions = _ledger(world.ledger_url)
    assert trades == expected
    made = {(r.execution_id, r.price, r.quantity) for r in _drop_copy(world.kinesis)}
    assert made == {(t[0], t[2], t[3]) for t in expected}  # the node's own record of what it made
    cost = Decimal("1900.00") + Decimal("380.20") + Decimal("570.30")
    assert positions == {(ACCOUNT_A, "AAPL"): (15, cost), (ACCOUNT_B, "AAPL"): (-15, cost)}
