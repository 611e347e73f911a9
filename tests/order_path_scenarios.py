"""The order routes as ``make bench-api`` measures them and the tests count their AWS round trips.

Each scenario is one measured request with the requests it needs before it (an order to cancel)
and after it (the cancel that keeps the book small), for two traders of their own accounts. Prices
keep scenarios apart: resting buys at 185.00, the crossing pair at 191.00, nothing else on the
sell side, so every iteration sees the same book.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orders_api.dal.hotpath import MatchingGateway, NodeAnswer

from meridian.executions import order_id_for
from meridian.protocol import Message
from meridian_local.apigateway.apigw_events import proxy_event
from meridian_local.apigateway.aws_round_trips import AwsCall, sequential_round_trips
from meridian_local.delivery.lambda_events import LocalLambdaContext
from tests.orders_api_fixtures import role_session_arn

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

BUYER = (role_session_arn("meridian-trader-dev", "bench-buyer"), "BENCH-BUY")
SELLER = (role_session_arn("meridian-trader-dev", "bench-seller"), "BENCH-SELL")
TRADERS = (BUYER, SELLER)
RESTING_BUY = "185.00"
CROSSING = "191.00"


@dataclass(frozen=True, slots=True)
class Step:
    method: str
    path: str
    trader: tuple[str, str]
    expect: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", **self.headers}
        text = None if self.body is None else json.dumps(self.body)
        return proxy_event(self.method, self.path, user_arn=self.trader[0], body=text, headers=headers)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    build: Callable[[str], tuple[list[Step], Step, list[Step]]]  # tag -> (before, measured, after)


def _order(side: str, price: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": "AAPL", "side": side, "quantity": 5, "price": price, **extra}


def _place(tag: str, trader: tuple[str, str] = BUYER, side: str = "BUY", price: str = RESTING_BUY) -> Step:
    return Step("POST", "/orders", trader, 201, _order(side, price, client_order_id=tag))


def _cancel(tag: str, trader: tuple[str, str] = BUYER, expect: int = 200) -> Step:
    return Step("DELETE", f"/orders/{order_id_for(trader[1], tag)}", trader, expect)


def _post(tag: str) -> tuple[list[Step], Step, list[Step]]:
    return [], _place(tag), [_cancel(tag)]


def _post_keyed(tag: str) -> tuple[list[Step], Step, list[Step]]:
    from orders_api.logic.submit import client_order_id_for  # noqa: PLC0415 - the function's package

    key = f"key-{tag}"
    measured = Step("POST", "/orders", BUYER, 201, _order("BUY", RESTING_BUY), {"Idempotency-Key": key})
    return [], measured, [_cancel(client_order_id_for(key))]


def _post_crossing(tag: str) -> tuple[list[Step], Step, list[Step]]:
    resting = _place(f"{tag}s", SELLER, "SELL", CROSSING)
    return [resting], _place(f"{tag}b", BUYER, "BUY", CROSSING), []


def _delete(tag: str) -> tuple[list[Step], Step, list[Step]]:
    return [_place(tag)], _cancel(tag), []


def _patch(tag: str) -> tuple[list[Step], Step, list[Step]]:
    path = f"/orders/{order_id_for(BUYER[1], tag)}"
    return [_place(tag)], Step("PATCH", path, BUYER, 200, {"price": "185.50"}), [_cancel(tag)]


def _get(tag: str) -> tuple[list[Step], Step, list[Step]]:
    return [_place(tag)], Step("GET", f"/orders/{order_id_for(BUYER[1], tag)}", BUYER, 200), [_cancel(tag)]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("POST /orders", _post),
    Scenario("POST /orders (Idempotency-Key)", _post_keyed),
    Scenario("POST /orders (fills a resting order)", _post_crossing),
    Scenario("DELETE /orders/{id}", _delete),
    Scenario("PATCH /orders/{id}", _patch),
    Scenario("GET /orders/{id}", _get),
)


def send(handler: Handler, step: Step) -> dict[str, Any]:
    """Run one request through the handler; anything but the expected status is an error."""
    response = handler(step.event(), LocalLambdaContext(function_name="OrdersApiFunction"))
    if response["statusCode"] != step.expect:
        status, body = response["statusCode"], response.get("body")
        raise RuntimeError(f"{step.method} {step.path}: {status} (expected {step.expect}): {body}")
    return response


class TimedGateway:
    """A matching gateway that remembers when each exchange with the node began and ended, so the
    AWS round trips of a request can be split into those before the node and those after it."""

    def __init__(self, inner: MatchingGateway) -> None:
        self.inner = inner
        self.exchanges: list[tuple[float, float]] = []

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        started = time.perf_counter()
        try:
            return self.inner.send(symbol, request)
        finally:
            self.exchanges.append((started, time.perf_counter()))

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        started = time.perf_counter()
        try:
            return self.inner.send_to(node, request)
        finally:
            self.exchanges.append((started, time.perf_counter()))

    def nodes(self) -> list[str]:
        return self.inner.nodes()

    def ping(self) -> bool:
        return self.inner.ping()


@dataclass(frozen=True, slots=True)
class RoundTrips:
    total: int  # sequential AWS round trips of the whole request
    before_node: int
    after_node: int
    calls: int  # AWS calls, concurrent ones included


def round_trips(calls: Sequence[AwsCall], exchanges: Sequence[tuple[float, float]]) -> RoundTrips:
    """The request's sequential round trips, and how many of them came before / after the node."""
    total = sequential_round_trips(calls)
    if not exchanges:
        return RoundTrips(total, total, 0, len(calls))
    first, last = exchanges[0][0], exchanges[-1][1]
    before = sequential_round_trips([c for c in calls if c.ended <= first])
    after = sequential_round_trips([c for c in calls if c.started >= last])
    return RoundTrips(total, before, after, len(calls))
