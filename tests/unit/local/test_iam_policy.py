"""IAM's decision for execute-api:Invoke: wildcards, case, explicit and implicit deny, what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.iam.policy import (
    Decision,
    UnsupportedPolicyError,
    action_matches,
    decide,
    parse_statements,
    require_supported,
    resource_matches,
)

API = "arn:aws:execute-api:us-east-1:123456789012:meridianapi"
INVOKE = "execute-api:Invoke"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(*resources: str, action: str | list[str] = INVOKE) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": list(resources)}


def deny(*resources: str, action: str | list[str] = INVOKE) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": list(resources)}


def decision(document: dict[str, Any], method_path: str, action: str = INVOKE) -> Decision:
    return decide(parse_statements(document), action, f"{API}/v1/{method_path}")


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        (f"{API}/v1/GET/orders", f"{API}/v1/GET/orders", True),
        (f"{API}/v1/GET/orders", f"{API}/v1/GET/orders/ord_1", False),  # no wildcard: exact only
        (f"{API}/v1/GET/orders/*", f"{API}/v1/GET/orders/ord_1", True),
        (f"{API}/v1/GET/orders/*", f"{API}/v1/GET/orders/ord_1/approval", True),  # * spans /
        (f"{API}/v1/GET/orders/*", f"{API}/v1/GET/orders", False),  # the / before * must be there
        (f"{API}/v1/GET/orders/*", f"{API}/v1/GET/orders/", True),  # * matches nothing too
        (f"{API}/v1/POST/orders/*/approval", f"{API}/v1/POST/orders/ord_1/approval", True),
        (f"{API}/v1/POST/orders/*/approval", f"{API}/v1/POST/orders/a/b/approval", True),
        (f"{API}/v1/POST/orders/*/approval", f"{API}/v1/POST/orders/ord_1/approvals", False),
        (f"{API}/v1/*/orders", f"{API}/v1/DELETE/orders", True),
        (f"{API}/*", f"{API}/v1/PATCH/orders/ord_1", True),
        (f"{API}/v1/GET/marketdata/????", f"{API}/v1/GET/marketdata/AAPL", True),
        (f"{API}/v1/GET/marketdata/????", f"{API}/v1/GET/marketdata/MSFTX", False),  # ? is one character
        (f"{API}/v1/GET/marketdata/????", f"{API}/v1/GET/marketdata/AAP", False),
        (f"{API}/v?/GET/health", f"{API}/v1/GET/health", True),
        (f"{API}/v1/get/orders", f"{API}/v1/GET/orders", False),  # resources are case-sensitive
        (f"{API}/v1/GET/Orders", f"{API}/v1/GET/orders", False),
        (f"{API.upper()}/v1/GET/orders", f"{API}/v1/GET/orders", False),
        (f"{API}/v1/GET/orders.*", f"{API}/v1/GET/ordersX", False),  # . is a character, not a regex
        ("*", f"{API}/v1/GET/orders", True),
        ("arn:aws:execute-api:*:123456789012:meridianapi/v1/GET/orders", f"{API}/v1/GET/orders", True),
        ("arn:aws:execute-api:us-*-1:123456789012:meridianapi/*", f"{API}/v1/GET/orders", True),
        ("arn:aws:execute-api:us-east-1:*", f"{API}/v1/GET/orders", True),  # a segment's last * spans :
        ("arn:aws:execute-api:us-east-1:1*2:meridianapi/*", f"{API}/v1/GET/orders", True),
        ("arn:aws:execute-api:u*2:meridianapi/*", f"{API}/v1/GET/orders", False),  # mid-segment * stops at :
        ("arn:aws:execute-api:us-east-1:123456789012:otherapi/*", f"{API}/v1/GET/orders", False),
        ("arn:aws:execute-api:eu-west-1:123456789012:meridianapi/*", f"{API}/v1/GET/orders", False),
    ],
)
def test_resource_wildcards_and_case(pattern: str, arn: str, matches: bool) -> None:
    assert resource_matches(pattern, arn) is matches


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("execute-api:Invoke", True),
        ("execute-api:invoke", True),  # actions are not case-sensitive
        ("EXECUTE-API:INVOKE", True),
        ("execute-api:*", True),
        ("execute-api:Inv?ke", True),
        ("*", True),
        ("execute-api:InvalidateCache", False),
        ("execute-api:Invoke*", True),
        ("execute-api:ManageConnections", False),
        ("apigateway:*", False),
    ],
)
def test_action_wildcards_and_case(pattern: str, matches: bool) -> None:
    assert action_matches(pattern, INVOKE) is matches


def test_exact_method_match() -> None:
    trader = policy(allow(f"{API}/v1/POST/orders", f"{API}/v1/GET/orders/*"))
    assert decision(trader, "POST/orders") is Decision.ALLOW
    assert decision(trader, "GET/orders/ord_1") is Decision.ALLOW
    for other in (
        "GET/orders",
        "PUT/orders",
        "DELETE/orders/ord_1",
        "POST/orders/ord_1",
        "PATCH/orders/ord_1",
    ):
        assert decision(trader, other) is Decision.IMPLICIT_DENY, other


def test_no_matching_allow_is_an_implicit_deny() -> None:
    assert decision(policy(), "GET/orders") is Decision.IMPLICIT_DENY
    assert decision(policy(allow(f"{API}/v1/GET/health")), "GET/orders") is Decision.IMPLICIT_DENY
    other_action = policy(allow(f"{API}/*", action="execute-api:InvalidateCache"))
    assert decision(other_action, "GET/orders") is Decision.IMPLICIT_DENY
    assert decision(policy(deny(f"{API}/v1/GET/health")), "GET/orders") is Decision.IMPLICIT_DENY


def test_explicit_deny_wins_over_allow_whatever_the_order() -> None:
    for statements in (
        (allow(f"{API}/*"), deny(f"{API}/v1/POST/admin/*")),
        (deny(f"{API}/v1/POST/admin/*"), allow(f"{API}/*")),
    ):
        document = policy(*statements)
        assert decision(document, "POST/admin/halt") is Decision.EXPLICIT_DENY
        assert decision(document, "GET/orders") is Decision.ALLOW
    assert not Decision.EXPLICIT_DENY.allowed
    assert not Decision.IMPLICIT_DENY.allowed
    assert Decision.ALLOW.allowed


def test_action_and_resource_as_string_or_list() -> None:
    as_strings = policy({"Effect": "Allow", "Action": INVOKE, "Resource": f"{API}/v1/GET/trades"})
    assert decision(as_strings, "GET/trades") is Decision.ALLOW
    as_lists = policy(allow(f"{API}/v1/GET/trades", action=["sqs:SendMessage", "execute-api:*"]))
    assert decision(as_lists, "GET/trades") is Decision.ALLOW
    single = {"Version": "2012-10-17", "Statement": allow(f"{API}/v1/GET/trades")}  # one object
    assert decision(single, "GET/trades") is Decision.ALLOW


def test_statements_are_read_strictly() -> None:
    (statement,) = parse_statements(policy({**allow(f"{API}/*"), "Sid": "Invoke"}), "p")
    assert (statement.sid, statement.allow, statement.actions) == ("Invoke", True, (INVOKE,))
    assert parse_statements(policy(allow(f"{API}/*")), "invoke-routes")[0].sid == "invoke-routes[0]"
    for bad in (
        {"Effect": "Allow", "NotAction": INVOKE, "Resource": "*"},
        {"Effect": "Allow", "Action": INVOKE, "NotResource": "*"},
        {"Effect": "Allow", "Principal": "*", "Action": INVOKE, "Resource": "*"},
        {"Effect": "allow", "Action": INVOKE, "Resource": "*"},
        {"Effect": "Allow", "Action": INVOKE},
        {"Effect": "Allow", "Action": [], "Resource": "*"},
        {"Effect": "Allow", "Action": INVOKE, "Resource": "*", "Extra": 1},
    ):
        with pytest.raises(UnsupportedPolicyError):
            parse_statements(policy(bad))


def test_conditions_and_policy_variables_on_the_action_are_refused_not_guessed() -> None:
    conditional = {**allow(f"{API}/*"), "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}
    with pytest.raises(UnsupportedPolicyError, match="Condition"):
        decision(policy(conditional), "GET/orders")
    with pytest.raises(UnsupportedPolicyError, match="Condition"):
        require_supported(parse_statements(policy(conditional)), INVOKE)
    with pytest.raises(UnsupportedPolicyError, match="policy variables"):
        decision(policy(allow(f"{API}/v1/GET/orders/${{aws:username}}")), "GET/orders/x")
    # A condition on another action does not bear on execute-api:Invoke.
    other = {**allow("*", action="kms:Decrypt"), "Condition": {"StringEquals": {"kms:ViaService": "x"}}}
    assert decision(policy(other, allow(f"{API}/*")), "GET/orders") is Decision.ALLOW
