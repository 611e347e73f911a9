"""Who is calling: API Gateway's IAM identity mapped to a user type and a trading account.

API Gateway verifies the SigV4 signature and the role's ``execute-api:Invoke`` permission per route;
this module maps the verified identity (the assumed-role ARN) to Meridian's principal record and
checks the action against the user type, so a trader's role that is too broad still cannot act on
another account. The session name is the person: the roles' trust policies let a caller assume
them only under their own IAM user name or the source identity their identity provider set, so
``--role-session-name alice`` makes no one alice but alice. A trader's account belongs to a person:
a trader is registered by session ARN, never for every session of a role (``<role>/*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from orders_api.errors import ForbiddenError, NotFoundError
from orders_api.models import UserType

_ASSUMED_ROLE = re.compile(
    r"^arn:aws[a-z-]*:sts::(?P<acct>\d{12}):assumed-role/(?P<role>[\w+=,.@-]+)/(?P<session>.+)$"
)


class Action(Enum):
    SUBMIT = "submit orders"
    MANAGE_OWN = "cancel or replace orders"
    READ_ORDERS = "read orders"
    READ_PORTFOLIO = "read positions and trades"
    READ_MARKET_DATA = "read market data"
    HALT = "halt and resume trading"
    APPROVE = "approve large orders"
    HEALTH = "read health"


# The same routes as each user type's IAM role in template.yaml may invoke (a test keeps them equal).
PERMISSIONS: Mapping[UserType, frozenset[Action]] = {
    "trader": frozenset(
        {Action.SUBMIT, Action.MANAGE_OWN, Action.READ_ORDERS, Action.READ_PORTFOLIO, Action.READ_MARKET_DATA}
    ),
    "risk_officer": frozenset(
        {Action.READ_ORDERS, Action.READ_PORTFOLIO, Action.READ_MARKET_DATA, Action.HALT}
    ),
    "compliance_officer": frozenset(
        {Action.READ_ORDERS, Action.READ_PORTFOLIO, Action.READ_MARKET_DATA, Action.APPROVE}
    ),
    "operator": frozenset({Action.HALT, Action.HEALTH}),
}


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    user_type: UserType
    account: str | None

    @property
    def sees_all_accounts(self) -> bool:
        return self.user_type != "trader"

    def require(self, action: Action) -> None:
        if action not in PERMISSIONS[self.user_type]:
            raise ForbiddenError("FORBIDDEN", f"a {self.user_type} may not {action.value}")

    def account_scope(self, requested: str | None) -> str | None:
        """The account a read is limited to: a trader's own, or the one an officer asked for."""
        if not self.sees_all_accounts:
            if requested not in (None, self.account):
                raise ForbiddenError("FORBIDDEN", "a trader reads only their own account")
            return self.account
        return requested

    def owns(self, account: str) -> bool:
        return self.sees_all_accounts or account == self.account

    def check_visible(self, account: str, what: str = "order") -> None:
        """404, not 403, for another account's object, so ids of other accounts do not leak."""
        if not self.owns(account):
            raise NotFoundError("NOT_FOUND", f"no such {what}")


PrincipalLookup = Callable[[list[str]], Mapping[str, Any] | None]
"""The first principal record found for the keys (most specific first), or None."""

_USER_TYPES: dict[str, UserType] = {
    "trader": "trader",
    "risk_officer": "risk_officer",
    "compliance_officer": "compliance_officer",
    "operator": "operator",
}


def principal_keys(user_arn: str) -> list[str]:
    """Keys to look up for an identity, most specific first: the session, then the whole role."""
    match = _ASSUMED_ROLE.match(user_arn)
    if match is None:
        return [user_arn]
    role_arn = f"arn:aws:sts::{match['acct']}:assumed-role/{match['role']}"
    return [user_arn, f"{role_arn}/*"]


def resolve_caller(identity: Mapping[str, Any], lookup: PrincipalLookup) -> Caller:
    user_arn = str(identity.get("userArn") or "")
    if not user_arn:
        raise ForbiddenError("FORBIDDEN", "the request carries no IAM identity")
    record = lookup(principal_keys(user_arn))
    if record is None:
        raise ForbiddenError("FORBIDDEN", "this identity is not registered with Meridian")
    user_type = _USER_TYPES.get(str(record.get("user_type", "")))
    if user_type is None:
        raise ForbiddenError("FORBIDDEN", "this identity has no valid user type")
    if user_type == "trader" and str(record.get("principal", "")).endswith("/*"):
        raise ForbiddenError("FORBIDDEN", "a trader is registered by person (the session's ARN), not by role")
    account = record.get("account")
    if user_type == "trader" and not account:
        raise ForbiddenError("FORBIDDEN", "this trader has no trading account")
    return Caller(principal=user_arn, user_type=user_type, account=str(account) if account else None)
