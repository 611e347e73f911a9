"""Every sample event (events/orders_api/*.json, for ``sam local invoke``) runs through the handler,
and there is one per route of the OpenAPI document (test_orders_api_definitions checks the documents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from orders_api.openapi_export import document
from orders_api.services import Services

from meridian_local.apigateway.order_function import load_handler
from meridian_local.delivery.lambda_events import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "events" / "orders_api").glob("*.json"))
EXPECTED = {
    "post_orders": 201,
    "get_order": 404,
    "get_order_fills": 404,  # no such order in the sample's empty table
    "list_orders": 200,
    "cancel_order": 404,
    "replace_order": 404,
    "approve_order": 404,
    "get_positions": 200,
    "get_trades": 200,
    "get_marketdata": 200,
    "get_health": 200,
    "post_halt": 200,
    "post_resume": 200,
}


def test_there_is_a_sample_per_route() -> None:
    routes = {(method.upper(), path) for path, ops in document()["paths"].items() for method in ops}
    sampled = set()
    for sample in SAMPLES:
        event = json.loads(sample.read_text())
        sampled.add((event["httpMethod"], event["resource"]))
    assert routes == sampled


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_sample_event_runs(sample: Path, svc: Services) -> None:
    event: dict[str, Any] = json.loads(sample.read_text())
    response = load_handler()(event, LocalLambdaContext(function_name="OrdersApiFunction"))
    assert response["statusCode"] == EXPECTED[sample.stem], response["body"]
    json.loads(response["body"])
