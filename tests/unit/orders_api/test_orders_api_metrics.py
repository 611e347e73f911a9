"""The order API's metrics: ApiLatency by route on every request (one EMF document each), Rejects by
reason, as catalogued."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.metrics_catalogue import FUNCTION_METRICS, assert_catalogued, emit_as_deployed, emitted
from tests.unit.orders_api.harness import Answer

Api = Callable[..., Answer]


def test_every_request_is_timed_and_every_refusal_counted_by_reason(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = emit_as_deployed(monkeypatch, "OrdersApiFunction")
    capsys.readouterr()
    accepted = api(
        "POST", "/orders", body={"symbol": "AAPL", "side": "BUY", "quantity": 10, "price": "190.00"}
    )
    unknown = api("POST", "/orders", body={"symbol": "NOPE", "side": "BUY", "quantity": 10, "price": "1.00"})
    too_big = api(
        "POST", "/orders", body={"symbol": "AAPL", "side": "BUY", "quantity": 10**9, "price": "190.00"}
    )
    listed = api("GET", "/orders")
    assert accepted.status == 201
    assert unknown.status >= 400
    assert too_big.status >= 400
    assert listed.status == 200
    metrics = emitted(capsys.readouterr().out)
    assert assert_catalogued("orders_api", metrics, service) == set(FUNCTION_METRICS["orders_api"])
    latencies = [m for m in metrics if m.name == "ApiLatency"]
    assert len(latencies) == 4  # refused ones included
    assert all(m.value >= 0 for m in latencies)
    # One document per invocation, each under its own route (never a concrete order id).
    assert [m.dimensions["route"] for m in latencies] == ["POST /orders"] * 3 + ["GET /orders"]
    reasons = sorted(m.dimensions["reason"] for m in metrics if m.name == "Rejects")
    assert reasons == sorted([unknown.body["error"], too_big.body["error"]])
