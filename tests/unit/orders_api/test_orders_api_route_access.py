"""template.yaml's IAM policies and the handler's user-type check agree, for every role and route.

In AWS a call is served only when both allow it: API Gateway asks IAM whether the caller's role may
``execute-api:Invoke`` the route, then the function checks the caller's user type
(``orders_api.auth``). Where they disagree, a user type is either let through the gateway only for
the function to refuse it (403 FORBIDDEN), or refused by the gateway on a route the function would
serve it. Every route of API Gateway's definition (docs/api/apigateway.json) is called through the
real handler with a valid request as each user type, and compared with the template's decision.
The definition's one unauthenticated route, API Gateway's own ``GET /ping``, asks IAM nothing and
reaches no function: it is checked apart, and needs no role's policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meridian_local.apigateway.route_access import RouteAccess
from tests.orders_api_fixtures import role_session_arn
from tests.unit.orders_api.harness import COMPLIANCE, OPERATOR, RISK, TRADER_A, Answer

Api = Callable[..., Answer]
DEFINITION = Path(__file__).resolve().parents[3] / "docs" / "api" / "apigateway.json"
OPERATIONS = {
    (method.upper(), path): operation
    for path, operations in json.loads(DEFINITION.read_text())["paths"].items()
    for method, operation in operations.items()
}
# Routes IAM decides: every one with a security requirement; the rest API Gateway answers itself.
ROUTES = [route for route, operation in OPERATIONS.items() if operation["security"]]
GATEWAY_ONLY = sorted(set(OPERATIONS) - set(ROUTES))
CALLERS = {"trader": TRADER_A, "risk_officer": RISK, "compliance_officer": COMPLIANCE, "operator": OPERATOR}
# A valid body for each route that takes one: the request must reach the handler's own checks.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders"): {"symbol": "AAPL", "side": "BUY", "quantity": 10, "price": "190.00"},
    ("PATCH", "/orders/{order_id}"): {"quantity": 5},
    ("POST", "/orders/{order_id}/approval"): {"decision": "APPROVE"},
    ("POST", "/admin/halt"): {"symbol": "AAPL", "reason": "route access test"},
    ("POST", "/admin/resume"): {"symbol": "AAPL"},
}


def concrete(path: str, order_id: str) -> str:
    return path.replace("{order_id}", order_id).replace("{symbol}", "AAPL")


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_iam_and_the_handler_allow_the_same_user_types(
    api: Api, route_access: RouteAccess, method: str, path: str
) -> None:
    placed = api("POST", "/orders", body=BODIES[("POST", "/orders")], who=TRADER_A)
    assert placed.status == 201, placed.body
    target = concrete(path, placed.body["order_id"])
    disagreements = []
    for user_type, principal in CALLERS.items():
        answer = api(method, target, body=BODIES.get((method, path)), who=principal)
        assert answer.body is None or answer.body.get("error") != "VALIDATION_ERROR", (user_type, answer.body)
        handler_allows = not (answer.status == 403 and answer.body["error"] == "FORBIDDEN")
        iam_allows = route_access.decide(principal, method, target).allowed
        if handler_allows != iam_allows:
            disagreements.append(
                f"{user_type} ({route_access.role_of(principal)}): IAM "
                f"{'allows' if iam_allows else 'denies'}, the handler answers {answer.status} {answer.body}"
            )
    assert not disagreements, f"{method} {path}:\n" + "\n".join(disagreements)


def test_every_role_that_may_invoke_a_route_is_a_user_type_compared_above(route_access: RouteAccess) -> None:
    compared = {route_access.role_of(principal) for principal in CALLERS.values()}
    assert None not in compared  # each is a session of a role the template declares
    invoking = set()
    for role, policies in route_access.roles.items():
        if policies.unsupported:  # managed policies: the functions' and state machines' roles
            continue
        caller = role_session_arn(role, "probe", route_access.api.account)
        if any(route_access.decide(caller, m, concrete(p, "ord_1")).allowed for m, p in ROUTES):
            invoking.add(role)
    assert invoking == compared


def test_routes_are_what_the_bodies_above_expect() -> None:
    assert set(BODIES) <= set(ROUTES)


def test_the_only_unauthenticated_route_is_the_gateways_mocked_ping(route_access: RouteAccess) -> None:
    assert GATEWAY_ONLY == [("GET", "/ping")]
    assert OPERATIONS[("GET", "/ping")]["x-amazon-apigateway-integration"]["type"] == "mock"
    assert route_access.gateway_answer("GET", "/ping") is not None  # the local gateway answers it
    assert all(route_access.gateway_answer(m, concrete(p, "ord_1")) is None for m, p in ROUTES)


def test_no_role_needs_or_has_a_policy_for_the_ping(route_access: RouteAccess) -> None:
    """API Gateway asks IAM nothing for an unauthenticated method: no template policy grants it."""
    for role, policies in route_access.roles.items():
        if policies.unsupported:
            continue
        caller = role_session_arn(role, "probe", route_access.api.account)
        assert not route_access.decide(caller, "GET", "/ping").allowed, role
