"""Identity mapping and the permission matrix."""

from __future__ import annotations

from typing import Any

import pytest
from orders_api.auth import Action, principal_keys, resolve_caller
from orders_api.errors import ForbiddenError, NotFoundError

SESSION = "arn:aws:sts::123456789012:assumed-role/meridian-trader/alice"


def directory(records: dict[str, dict[str, Any]]) -> Any:
    return lambda keys: next((records[k] for k in keys if k in records), None)


def test_session_wins_over_role_wildcard() -> None:
    assert principal_keys(SESSION) == [SESSION, "arn:aws:sts::123456789012:assumed-role/meridian-trader/*"]
    records = {
        SESSION: {"user_type": "trader", "account": "ACC-A"},
        principal_keys(SESSION)[1]: {"user_type": "trader", "account": "ACC-Z"},
    }
    assert resolve_caller({"userArn": SESSION}, directory(records)).account == "ACC-A"


def test_role_wildcard_covers_every_session() -> None:
    records = {"arn:aws:sts::123456789012:assumed-role/meridian-operator/*": {"user_type": "operator"}}
    caller = resolve_caller(
        {"userArn": "arn:aws:sts::123456789012:assumed-role/meridian-operator/olga"}, directory(records)
    )
    assert caller.user_type == "operator"
    caller.require(Action.HALT)
    with pytest.raises(ForbiddenError):
        caller.require(Action.SUBMIT)


def test_a_trader_is_registered_by_person_not_for_every_session_of_the_role() -> None:
    wildcard = principal_keys(SESSION)[1]
    records = {wildcard: {"principal": wildcard, "user_type": "trader", "account": "ACC-Z"}}
    with pytest.raises(ForbiddenError):
        resolve_caller({"userArn": SESSION}, directory(records))


@pytest.mark.parametrize(
    ("identity", "records"),
    [
        ({}, {}),
        ({"userArn": SESSION}, {}),
        ({"userArn": SESSION}, {SESSION: {"user_type": "admin"}}),
        ({"userArn": SESSION}, {SESSION: {"user_type": "trader"}}),  # a trader without an account
    ],
)
def test_unknown_or_incomplete_identities_are_forbidden(
    identity: dict[str, str], records: dict[str, Any]
) -> None:
    with pytest.raises(ForbiddenError):
        resolve_caller(identity, directory(records))


def test_traders_are_confined_to_their_account() -> None:
    caller = resolve_caller(
        {"userArn": SESSION}, directory({SESSION: {"user_type": "trader", "account": "A"}})
    )
    assert caller.account_scope(None) == "A"
    with pytest.raises(ForbiddenError):
        caller.account_scope("B")
    with pytest.raises(NotFoundError):
        caller.check_visible("B")


@pytest.mark.parametrize(
    ("user_type", "allowed"),
    [
        (
            "trader",
            {
                Action.SUBMIT,
                Action.MANAGE_OWN,
                Action.READ_ORDERS,
                Action.READ_PORTFOLIO,
                Action.READ_MARKET_DATA,
            },
        ),
        ("risk_officer", {Action.READ_ORDERS, Action.READ_PORTFOLIO, Action.READ_MARKET_DATA, Action.HALT}),
        (
            "compliance_officer",
            {Action.READ_ORDERS, Action.READ_PORTFOLIO, Action.READ_MARKET_DATA, Action.APPROVE},
        ),
        ("operator", {Action.HALT, Action.HEALTH}),
    ],
)
def test_permission_matrix(user_type: str, allowed: set[Action]) -> None:
    caller = resolve_caller(
        {"userArn": SESSION}, directory({SESSION: {"user_type": user_type, "account": "A"}})
    )
    for action in Action:
        if action in allowed:
            caller.require(action)
        else:
            with pytest.raises(ForbiddenError):
                caller.require(action)
