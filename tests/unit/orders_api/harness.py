"""An in-process order API over moto: tables, principals, the real engine, and a request helper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orders_api.config import Settings

from meridian_local.apigw_events import proxy_event
from meridian_local.lambda_events import LocalLambdaContext
from meridian_local.orders_api_fixtures import (
    EngineGateway,
    create_tables,
    register_principal,
    role_session_arn,
)

TRADER_A = role_session_arn("meridian-trader", "alice")
TRADER_B = role_session_arn("meridian-trader", "bob")
RISK = role_session_arn("meridian-risk-officer", "rita")
COMPLIANCE = role_session_arn("meridian-compliance-officer", "carl")
OPERATOR = role_session_arn("meridian-operator", "olga")
STRANGER = role_session_arn("meridian-trader", "mallory")
ACCOUNT_A = "ACC-A"
ACCOUNT_B = "ACC-B"

PRINCIPALS = (
    (TRADER_A, "trader", ACCOUNT_A),
    (TRADER_B, "trader", ACCOUNT_B),
    (RISK, "risk_officer", None),
    (COMPLIANCE, "compliance_officer", None),
    (OPERATOR, "operator", None),
)


def seed(clients: Mapping[str, Any], settings: Settings) -> None:
    create_tables(clients["dynamodb"], settings)
    clients["events"].create_event_bus(Name=settings.event_bus_name)
    for principal, user_type, account in PRINCIPALS:
        register_principal(clients["dynamodb"], settings, principal, user_type, account)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def call(
    handler: Any,
    method: str,
    path: str,
    *,
    who: str | None = TRADER_A,
    body: Any = None,
    query: str = "",
    headers: Mapping[str, str] | None = None,
) -> Answer:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    event = proxy_event(method, path, user_arn=who, body=text, headers=all_headers, query=query)
    response = handler(event, LocalLambdaContext(function_name="orders-api"))
    payload = json.loads(response["body"]) if response.get("body") else None
    merged = {**(response.get("headers") or {})}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        merged[name] = values[-1]
    return Answer(response["statusCode"], payload, merged)


def new_gateway() -> EngineGateway:
    return EngineGateway(node="node-1")


ACCESS_KEYS = {
    "AKIDTRADERA000000001": TRADER_A,
    "AKIDTRADERB000000002": TRADER_B,
    "AKIDRISK000000000003": RISK,
    "AKIDCOMPLIANCE000004": COMPLIANCE,
    "AKIDOPERATOR00000005": OPERATOR,
}


def secret_for(access_key: str) -> str:
    return f"secret-of-{access_key.lower()}"


def key_for(principal: str) -> str:
    return next(key for key, who in ACCESS_KEYS.items() if who == principal)
