"""Order routes through the real handler: idempotency, cancel, replace, approval, visibility."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from orders_api.dal.hotpath import NodeAnswer, NodeOutcomeUnknown, NodeUnavailable
from orders_api.services import Services

from meridian.protocol import Message
from tests.orders_api_fixtures import EngineGateway
from tests.unit.orders_api.harness import (
    COMPLIANCE,
    OPERATOR,
    RISK,
    TRADER_A,
    TRADER_B,
    Answer,
    await_approval,
)

Api = Callable[..., Answer]


def order(side: str = "BUY", qty: int = 10, price: str | None = "190.00", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": "AAPL", "side": side, "quantity": qty, **extra}
    if price is not None:
        body["price"] = price
    return body


def test_retry_with_idempotency_key_returns_the_first_answer(api: Api, gateway: EngineGateway) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = api("POST", "/orders", body=order(), headers=headers)
    again = api("POST", "/orders", body=order(), headers=headers)
    assert first.status == again.status == 201
    assert again.body["order_id"] == first.body["order_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(gateway.sent) == 1


def test_same_key_with_another_body_is_refused(api: Api) -> None:
    api("POST", "/orders", body=order(), headers={"Idempotency-Key": "k-2"})
    other = api("POST", "/orders", body=order(qty=11), headers={"Idempotency-Key": "k-2"})
    assert other.status == 422
    assert other.body["error"] == "IDEMPOTENCY_KEY_REUSED"


def test_client_order_id_alone_makes_retries_safe(api: Api, gateway: EngineGateway) -> None:
    first = api("POST", "/orders", body=order(client_order_id="c-1"))
    again = api("POST", "/orders", body=order(client_order_id="c-1"))
    assert again.body["order_id"] == first.body["order_id"]
    assert len(gateway.sent) == 1


def test_trader_cannot_see_or_cancel_another_accounts_order(api: Api) -> None:
    mine = api("POST", "/orders", body=order()).body["order_id"]
    assert api("GET", f"/orders/{mine}", who=TRADER_B).status == 404
    cancel = api("DELETE", f"/orders/{mine}", who=TRADER_B)
    assert cancel.status == 404
    assert cancel.body == {"error": "NOT_FOUND", "message": "no such order", "details": [], "order_id": None}
    assert api("GET", f"/orders/{mine}").body["status"] == "NEW"
    assert api("GET", f"/orders/{mine}", who=RISK).status == 200


def test_cancel_then_cancel_again(api: Api) -> None:
    placed = api("POST", "/orders", body=order()).body["order_id"]
    cancelled = api("DELETE", f"/orders/{placed}")
    assert cancelled.status == 200
    assert cancelled.body["status"] == "CANCELLED"
    again = api("DELETE", f"/orders/{placed}")
    assert again.status == 409
    assert again.body["error"] == "ORDER_NOT_OPEN"


def test_replace_moves_price_and_can_trade(api: Api) -> None:
    api("POST", "/orders", body=order("SELL", 5, "191.00"), who=TRADER_B)
    placed = api("POST", "/orders", body=order("BUY", 5, "189.00")).body["order_id"]
    changed = api("PATCH", f"/orders/{placed}", body={"price": "191.00"})
    assert changed.status == 200, changed.body
    assert changed.body["status"] == "FILLED"
    assert changed.body["price"] == "191.00"


def test_off_grid_price_and_lot_size_are_422_with_reason(api: Api) -> None:
    off_grid = api("POST", "/orders", body=order(price="190.001"))
    assert off_grid.status == 422
    assert off_grid.body["error"] == "TICK_SIZE"
    futures = api(
        "POST", "/orders", body={"symbol": "ESZ6", "side": "BUY", "quantity": 1, "price": "6000.10"}
    )
    assert futures.body["error"] == "TICK_SIZE"
    crypto = api(
        "POST", "/orders", body={"symbol": "BTCUSD", "side": "BUY", "quantity": 3, "price": "95000.00"}
    )
    assert crypto.body["error"] == "LOT_SIZE"


def test_schema_errors_have_the_common_shape(api: Api) -> None:
    bad = api("POST", "/orders", body={"symbol": "AAPL", "side": "BUY", "quantity": 0})
    assert bad.status == 422
    assert bad.body["error"] == "VALIDATION_ERROR"
    assert bad.body["details"]
    assert {"loc", "type", "msg"} <= set(bad.body["details"][0])
    not_json = api("POST", "/orders", body="{nope")
    assert not_json.status == 422
    assert api("GET", "/nowhere").body["error"] == "ROUTE_NOT_FOUND"


def test_node_reject_is_recorded_and_answered_422(api: Api) -> None:
    api("POST", "/orders", body=order("SELL", 5, "190.00"), who=TRADER_B)
    refused = api("POST", "/orders", body=order("BUY", 5, "190.00", post_only=True, client_order_id="po-1"))
    assert refused.status == 422
    assert refused.body["error"] == "POST_ONLY_WOULD_CROSS"
    assert api("GET", f"/orders/{refused.body['order_id']}").body["status"] == "REJECTED"


def test_large_order_waits_for_compliance(
    api: Api, gateway: EngineGateway, svc: Services, clients: dict[str, Any]
) -> None:
    held = api("POST", "/orders", body=order("BUY", 6000, "190.00"))
    assert held.status == 202
    assert held.body["status"] == "PENDING_APPROVAL"
    assert gateway.sent == []
    await_approval(svc, clients["dynamodb"], held.body["order_id"])
    assert (
        api("POST", f"/orders/{held.body['order_id']}/approval", body={"decision": "APPROVE"}).status == 403
    )
    decided = api(
        "POST",
        f"/orders/{held.body['order_id']}/approval",
        who=COMPLIANCE,
        body={"decision": "REJECT", "comment": "no"},
    )
    assert decided.status == 200
    assert decided.body["status"] == "REJECTED"
    assert decided.body["reject_reason"] == "COMPLIANCE_REJECTED"


class FlakyGateway(EngineGateway):
    """Loses the first answer to a new order (sent, acted on, never answered), then behaves."""

    def __init__(self) -> None:
        super().__init__(node="node-1")
        self.lose_next = True

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        answer = super().send_to(node, request)
        if self.lose_next:
            self.lose_next = False
            raise NodeOutcomeUnknown("timed out")
        return answer


def test_unanswered_order_is_unconfirmed_then_resolved_by_the_retry(api: Api, svc: Services) -> None:
    flaky = FlakyGateway()
    svc.gateway = flaky
    headers = {"Idempotency-Key": "k-timeout"}
    lost = api("POST", "/orders", body=order(), headers=headers)
    assert lost.status == 503
    assert lost.headers["Retry-After"] == "1"
    assert lost.body["error"] == "MATCHING_OUTCOME_UNKNOWN"
    retried = api("POST", "/orders", body=order(), headers=headers)
    assert retried.status == 201
    assert retried.body["status"] == "NEW"
    sent = [m.client_order_id for m in flaky.sent]  # type: ignore[union-attr]
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert len(api("GET", "/orders").body["orders"]) == 1


class DownGateway(EngineGateway):
    def send_to(self, node: str, request: Message) -> NodeAnswer:
        raise NodeUnavailable("connection refused")


@pytest.mark.parametrize("path", ["/orders"])
def test_unreachable_node_is_503_and_records_nothing(api: Api, svc: Services, path: str) -> None:
    svc.gateway = DownGateway()
    down = api("POST", path, body=order(client_order_id="d-1"))
    assert down.status == 503
    assert down.body["error"] == "MATCHING_UNAVAILABLE"
    assert api("GET", "/orders").body["orders"] == []


def test_list_is_paginated_and_filtered(api: Api) -> None:
    for n in range(5):
        api("POST", "/orders", body=order(price=f"18{n}.00"))
    api("POST", "/orders", body=order(), who=TRADER_B)
    first = api("GET", "/orders", query="limit=3")
    assert first.status == 200
    assert len(first.body["orders"]) == 3
    rest = api("GET", "/orders", query=f"limit=3&next_token={first.body['next_token']}")
    ids = [o["order_id"] for o in first.body["orders"] + rest.body["orders"]]
    assert len(set(ids)) == 5
    assert all(o["account"] == "ACC-A" for o in first.body["orders"] + rest.body["orders"])
    assert api("GET", "/orders", query="next_token=bm9wZQ").body["error"] == "INVALID_NEXT_TOKEN"
    assert api("GET", "/orders", query="account=ACC-B").status == 403
    assert len(api("GET", "/orders", who=RISK, query="account=ACC-B").body["orders"]) == 1
    assert len(api("GET", "/orders", who=RISK, query="status=NEW&symbol=AAPL").body["orders"]) == 6


def test_unknown_identity_is_403(api: Api) -> None:
    assert api("GET", "/orders", who=None).status == 403
    stranger = api("GET", "/orders", who="arn:aws:sts::123456789012:assumed-role/x/y")
    assert stranger.status == 403
    assert stranger.body["error"] == "FORBIDDEN"
    assert api("POST", "/orders", body=order(), who=RISK).status == 403
    assert api("GET", "/health", who=TRADER_A).status == 403  # operators only, as the roles in template.yaml


class RetryingWhileSent(EngineGateway):
    """While the first request waits for the node, the client's retry of it arrives."""

    def __init__(self, api: Api) -> None:
        super().__init__(node="node-1")
        self.api = api
        self.retried: Answer | None = None

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        if self.retried is None:
            self.retried = self.api("POST", "/orders", body=order(), headers={"Idempotency-Key": "k-busy"})
        return super().send_to(node, request)


def test_a_retry_while_the_first_request_waits_for_the_node_is_409_and_sends_nothing(
    api: Api, svc: Services
) -> None:
    gateway = RetryingWhileSent(api)
    svc.gateway = gateway
    first = api("POST", "/orders", body=order(), headers={"Idempotency-Key": "k-busy"})
    assert first.status == 201
    assert gateway.retried is not None
    assert (gateway.retried.status, gateway.retried.body["error"]) == (409, "REQUEST_IN_PROGRESS")
    assert gateway.retried.headers["Retry-After"] == "1"
    assert len(gateway.sent) == 1
    again = api("POST", "/orders", body=order(), headers={"Idempotency-Key": "k-busy"})
    assert (again.status, again.body["order_id"]) == (201, first.body["order_id"])
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_a_retry_after_a_halt_still_gets_the_first_answer(api: Api) -> None:
    headers = {"Idempotency-Key": "k-halt"}
    first = api("POST", "/orders", body=order(), headers=headers)
    assert api("POST", "/admin/halt", who=OPERATOR, body={"symbol": "AAPL"}).status == 200
    again = api("POST", "/orders", body=order(), headers=headers)
    assert (again.status, again.body["order_id"]) == (201, first.body["order_id"])
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert api("POST", "/orders", body=order(), headers={"Idempotency-Key": "k-new"}).body["error"] == (
        "TRADING_HALTED"
    )


def test_an_order_waiting_for_compliance_is_cancelled_without_reaching_the_node(
    api: Api, gateway: EngineGateway, svc: Services, clients: dict[str, Any]
) -> None:
    held = api("POST", "/orders", body=order("BUY", 6000, "190.00")).body["order_id"]
    await_approval(svc, clients["dynamodb"], held)
    cancelled = api("DELETE", f"/orders/{held}")
    assert cancelled.status == 200
    assert (cancelled.body["status"], cancelled.body["cancel_reason"]) == ("CANCELLED", "USER")
    assert cancelled.body["leaves_quantity"] == 0
    assert gateway.sent == []  # it never reached the node
    assert api("GET", f"/orders/{held}").body["status"] == "CANCELLED"
    again = api("DELETE", f"/orders/{held}")
    assert (again.status, again.body["error"]) == (409, "ORDER_NOT_OPEN")
