"""Which channels a verified caller may stream, decided as the REST API decides the same reads.

A channel stands for the REST read that returns the same data, and the caller's role must be
allowed to invoke it (``execute-api:Invoke`` on its method ARN, decided by ``meridian.iam.access``
from the role's identity policies, with the trust policy's session rule, exactly as the local API
Gateway decides it):

* ``book.<SYMBOL>`` and ``trades.<SYMBOL>``: ``GET /marketdata/<SYMBOL>``;
* ``orders``: ``GET /orders``, and the caller must be a trader registered with an account
  (the Principals table, as the order API's ``auth.resolve_caller`` reads it): the channel carries
  that account's orders and no other's. Officers read other accounts through the REST API only.

The roles' policies come from the template (local platform) or from IAM (``iam_role_policies``:
``GetRole`` and the inline policies of each role named in the gateway's configuration).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from meridian.iam.access import AccessDeniedError, ExecuteApi, RoleAccess, RolePolicies
from meridian.iam.policy import UnsupportedPolicyError
from meridian_gateway.identity import AuthError, Identity

_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(?P<acct>\d{12}):assumed-role/(?P<role>[\w+=,.@-]+)/.+$")
MARKET_CHANNELS = ("book", "trades")

PrincipalLookup = Callable[[list[str]], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    user_type: str
    account: str | None  # a trader's account: the orders channel's only account


def principal_keys(principal: str) -> list[str]:
    """The session, then every session of its role (the order API's lookup order)."""
    match = _ASSUMED_ROLE.match(principal)
    if match is None:
        return [principal]
    return [principal, f"arn:aws:sts::{match['acct']}:assumed-role/{match['role']}/*"]


def route_of(channel: str) -> tuple[str, str]:
    """The REST route a channel stands for."""
    if channel == "orders":
        return "GET", "/orders"
    kind, _, symbol = channel.partition(".")
    if kind not in MARKET_CHANNELS or not symbol:
        raise ValueError(f"not a channel: {channel!r}")
    return "GET", f"/marketdata/{symbol}"


class ChannelAccess:
    def __init__(self, roles: RoleAccess, principals: PrincipalLookup) -> None:
        self.roles = roles
        self.principals = principals

    def caller(self, identity: Identity) -> Caller:
        """The registered caller behind a verified identity; AuthError (403) otherwise."""
        try:
            self.roles.check_session(identity.principal, identity.user)
        except AccessDeniedError as exc:
            raise AuthError("ACCESS_DENIED", exc.message, status=403) from None
        if self.roles.role_of(identity.principal) is None:
            raise AuthError("ACCESS_DENIED", "only sessions of this platform's roles may connect", status=403)
        record = self.principals(principal_keys(identity.principal))
        if record is None:
            raise AuthError("ACCESS_DENIED", "this identity is not registered with Meridian", status=403)
        user_type = str(record.get("user_type", ""))
        account = record.get("account")
        if user_type == "trader" and str(record.get("principal", "")).endswith("/*"):
            raise AuthError("ACCESS_DENIED", "a trader is registered by person, not by role", status=403)
        return Caller(
            identity.principal, user_type, str(account) if user_type == "trader" and account else None
        )

    def allowed(self, caller: Caller, channel: str) -> str | None:
        """None when ``caller`` may subscribe to ``channel``; otherwise why not."""
        method, path = route_of(channel)
        try:
            self.roles.authorize(caller.principal, method, path)
        except AccessDeniedError:
            return f"your role may not {method} {unquote(path)}, which this channel stands for"
        except UnsupportedPolicyError as exc:
            return f"the role's policies cannot be decided here: {exc}"
        if channel == "orders" and caller.account is None:
            return "the orders channel carries a trader's own account; this caller has none"
        return None


def dynamodb_principals(client: Any, table: str) -> PrincipalLookup:
    """The first Principals item found for the keys, most specific first."""

    def lookup(keys: list[str]) -> Mapping[str, Any] | None:
        for key in keys:
            item = client.get_item(TableName=table, Key={"principal": {"S": key}}).get("Item")
            if item:
                return {name: next(iter(value.values())) for name, value in item.items()}
        return None

    return lookup


def iam_role_policies(client: Any, role_names: Iterable[str]) -> dict[str, RolePolicies]:
    """Each role's trust policy and inline identity policies, read from IAM (the gateway in AWS)."""
    roles: dict[str, RolePolicies] = {}
    for name in role_names:
        role = client.get_role(RoleName=name)["Role"]
        documents = []
        for page in client.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy in page["PolicyNames"]:
                document = client.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                documents.append((policy, document))
        attached = client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        unsupported = f"managed policies are not read here: {attached}" if attached else ""
        roles[name] = RolePolicies(tuple(documents), unsupported, role.get("AssumeRolePolicyDocument"))
    return roles


def role_access(api: ExecuteApi, roles: Mapping[str, RolePolicies]) -> RoleAccess:
    return RoleAccess(api, roles)
