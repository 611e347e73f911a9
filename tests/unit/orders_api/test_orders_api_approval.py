"""The compliance decision route through the real handler: it answers the waiting order flow.

The OrderApprovals table is moto's; Step Functions is a recorder at the approval desk's boundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from orders_api.services import Services

from meridian.approvals.store import DynamoApprovalStore
from tests.orders_api_fixtures import register_principal, role_session_arn
from tests.unit.orders_api.harness import (
    COMPLIANCE,
    Answer,
    await_approval,
    use_step_functions,
)

Api = Callable[..., Answer]
LARGE = {"symbol": "AAPL", "side": "BUY", "quantity": 6000, "price": "190.00"}


@pytest.fixture
def held(api: Api) -> str:
    answer = api("POST", "/orders", body=LARGE)
    assert answer.status == 202
    order_id: str = answer.body["order_id"]
    return order_id


def decide(api: Api, order_id: str, decision: str, comment: str = "") -> Answer:
    body = {"decision": decision, "comment": comment}
    return api("POST", f"/orders/{order_id}/approval", who=COMPLIANCE, body=body)


def approval_item(clients: dict[str, Any], svc: Services, order_id: str) -> dict[str, Any]:
    item: dict[str, Any] = clients["dynamodb"].get_item(
        TableName=svc.settings.order_approvals_table, Key={"order_id": {"S": order_id}}
    )["Item"]
    return item


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status
    assert answer.body["error"] == code
    assert answer.body["message"]
    assert answer.body["details"] == []


def assert_still_held(api: Api, order_id: str) -> None:
    order = api("GET", f"/orders/{order_id}", who=COMPLIANCE).body
    assert (order["status"], order["approval"]) == ("PENDING_APPROVAL", None)


def test_approve_answers_the_waiting_task_with_its_token(
    api: Api, svc: Services, clients: dict[str, Any], held: str
) -> None:
    sfn = await_approval(svc, clients["dynamodb"], held, token="token-of-" + held)

    answer = decide(api, held, "APPROVE", "checked")

    assert answer.status == 200
    assert answer.body["status"] == "PENDING_APPROVAL"  # the order flow routes it
    assert (answer.body["approval"]["decision"], answer.body["approval"]["actor"]) == ("APPROVE", COMPLIANCE)
    [(operation, params)] = sfn.calls
    assert (operation, params["taskToken"]) == ("SendTaskSuccess", "token-of-" + held)
    output = json.loads(params["output"])
    assert (output["order_id"], output["decision"], output["reviewer"]) == (held, "APPROVE", COMPLIANCE)
    stored = approval_item(clients, svc, held)
    assert (stored["status"]["S"], stored["reviewer"]["S"], stored["comment"]["S"]) == (
        "APPROVED",
        COMPLIANCE,
        "checked",
    )
    assert api("GET", f"/orders/{held}", who=COMPLIANCE).body["approval"]["decision"] == "APPROVE"


def test_reject_fails_the_waiting_task_and_rejects_the_order(
    api: Api, svc: Services, clients: dict[str, Any], held: str
) -> None:
    sfn = await_approval(svc, clients["dynamodb"], held)

    answer = decide(api, held, "REJECT", "too large")

    assert answer.status == 200
    assert (answer.body["status"], answer.body["reject_reason"]) == ("REJECTED", "COMPLIANCE_REJECTED")
    [(operation, params)] = sfn.calls
    assert (operation, params["taskToken"], params["error"]) == (
        "SendTaskFailure",
        "task-token-1",
        "ComplianceRejected",
    )
    assert json.loads(params["cause"])["comment"] == "too large"
    assert approval_item(clients, svc, held)["status"]["S"] == "REJECTED"


def test_no_approval_requested_is_404(api: Api, svc: Services, clients: dict[str, Any], held: str) -> None:
    sfn = use_step_functions(svc, clients["dynamodb"])

    assert_error(decide(api, held, "APPROVE"), 404, "APPROVAL_NOT_FOUND")
    assert sfn.calls == []
    assert_still_held(api, held)


def test_the_submitter_cannot_decide_403(api: Api, svc: Services, clients: dict[str, Any], held: str) -> None:
    sfn = await_approval(svc, clients["dynamodb"], held, submitted_by=COMPLIANCE)

    assert_error(decide(api, held, "APPROVE"), 403, "SELF_APPROVAL")
    assert sfn.calls == []
    assert approval_item(clients, svc, held)["status"]["S"] == "PENDING"
    assert_still_held(api, held)


def test_one_person_in_two_roles_cannot_decide_on_their_own_order_403(
    api: Api, svc: Services, clients: dict[str, Any], held: str
) -> None:
    # Alice trades (the held order is hers) and is also a compliance officer: two role sessions,
    # one person, as the roles' trust policies bind each session name to the caller's own name.
    alice_in_compliance = role_session_arn("meridian-compliance-officer-dev", "alice")
    register_principal(clients["dynamodb"], svc.settings, alice_in_compliance, "compliance_officer", None)
    sfn = await_approval(svc, clients["dynamodb"], held)
    body = {"decision": "APPROVE", "comment": "mine"}
    refused = api("POST", f"/orders/{held}/approval", who=alice_in_compliance, body=body)
    assert_error(refused, 403, "SELF_APPROVAL")
    assert sfn.calls == []
    assert_still_held(api, held)
    assert decide(api, held, "APPROVE").status == 200  # carl is someone else


def test_a_trader_cannot_decide_403(api: Api, svc: Services, clients: dict[str, Any], held: str) -> None:
    sfn = await_approval(svc, clients["dynamodb"], held)

    refused = api("POST", f"/orders/{held}/approval", body={"decision": "APPROVE"})

    assert_error(refused, 403, "FORBIDDEN")
    assert sfn.calls == []


def test_an_approval_decided_elsewhere_is_409(
    api: Api, svc: Services, clients: dict[str, Any], held: str
) -> None:
    sfn = await_approval(svc, clients["dynamodb"], held)
    store = DynamoApprovalStore(clients["dynamodb"], svc.settings.order_approvals_table)

    assert store.decide(held, "APPROVED", "another-officer", "by tooling", datetime.now(UTC))

    assert_error(decide(api, held, "REJECT"), 409, "APPROVAL_ALREADY_DECIDED")
    assert sfn.calls == []
    assert_still_held(api, held)


def test_an_expired_approval_is_409(api: Api, svc: Services, clients: dict[str, Any], held: str) -> None:
    await_approval(svc, clients["dynamodb"], held)
    sfn = use_step_functions(svc, clients["dynamodb"], error="TaskTimedOut")

    assert_error(decide(api, held, "APPROVE"), 409, "APPROVAL_EXPIRED")
    assert [operation for operation, _ in sfn.calls] == ["SendTaskSuccess"]
    assert approval_item(clients, svc, held)["status"]["S"] == "EXPIRED"
    assert_still_held(api, held)

    assert_error(decide(api, held, "APPROVE"), 409, "APPROVAL_EXPIRED")
