"""Each order route's sequential AWS round trips, counted by a botocore hook on every client (calls
made concurrently count once), split at the matching node. ``make bench-api`` measures what they
cost; here their number is held: with warm caches, POST /orders, DELETE and PATCH /orders/{id}
wait for AWS once before the node and twice after it (the goal for POST: at most 2 and 2), and
GET /orders/{id} once. Before these changes POST /orders made 10 (7 before the node)."""

from __future__ import annotations

from typing import Any

import pytest
from orders_api.config import Settings
from orders_api.services import Services

from meridian_local.apigateway.aws_round_trips import RoundTripRecorder
from meridian_local.apigateway.order_function import load_handler
from tests.order_path_scenarios import SCENARIOS, TRADERS, Scenario, TimedGateway, round_trips, send
from tests.orders_api_fixtures import register_principal

EXPECTED = {  # (before the node, after it)
    "POST /orders": (1, 2),
    "POST /orders (Idempotency-Key)": (1, 2),
    "POST /orders (fills a resting order)": (1, 2),
    "DELETE /orders/{id}": (1, 2),
    "PATCH /orders/{id}": (1, 2),
    "GET /orders/{id}": (1, 0),
}


@pytest.fixture
def settings(aws_env: None) -> Settings:
    return Settings(reference_ttl_seconds=600)  # the caches stay warm for the whole test


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_round_trips_per_route(scenario: Scenario, svc: Services, clients: dict[str, Any]) -> None:
    for principal, account in TRADERS:
        register_principal(clients["dynamodb"], svc.settings, principal, "trader", account)
    recorder = RoundTripRecorder()
    recorder.attach(*clients.values())
    gateway = TimedGateway(svc.gateway)
    svc.gateway = gateway
    handler = load_handler()
    counted = []
    # The first request reads the principal and the reference data, and an account's first order
    # ever adds its ledger positions to its exposure: what is held here is the warm path.
    for tag in ("first", "warm"):
        before, measured, after = scenario.build(tag)
        for step in before:
            send(handler, step)
        gateway.exchanges.clear()
        with recorder.request() as calls:
            send(handler, measured)
        counted.append(round_trips(calls, gateway.exchanges))
        for step in after:
            send(handler, step)
    warm = counted[-1]
    assert (warm.before_node, warm.after_node) == EXPECTED[scenario.name]
    assert warm.total == sum(EXPECTED[scenario.name])
