"""An in-process order API over moto: tables, principals, the real engine, and a request helper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from orders_api.config import Settings
from orders_api.dal.approvals import StepFunctionsApprovalDesk
from orders_api.services import Services

from meridian.approvals.models import PENDING, PendingApproval
from meridian.approvals.store import DynamoApprovalStore
from meridian.iam.sigv4 import LocalCredential
from meridian_local.apigateway.apigw_events import proxy_event
from meridian_local.delivery.lambda_events import LocalLambdaContext
from tests.orders_api_fixtures import (
    EngineGateway,
    role_session_arn,
    seed_order_api,
)

# Sessions of the template's roles (environment dev), so the local gateway's IAM check applies to them.
TRADER_A = role_session_arn("meridian-trader-dev", "alice")
TRADER_B = role_session_arn("meridian-trader-dev", "bob")
RISK = role_session_arn("meridian-risk-officer-dev", "rita")
COMPLIANCE = role_session_arn("meridian-compliance-officer-dev", "carl")
OPERATOR = role_session_arn("meridian-operator-dev", "olga")
STRANGER = role_session_arn("meridian-trader-dev", "mallory")
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
    seed_order_api(clients, settings, PRINCIPALS)


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


def local_credential(access_key: str, principal: str, user: str | None = None) -> LocalCredential:
    """A session as STS issues it to the IAM user of its name (``user``: issued to someone else)."""
    return LocalCredential(secret_for(access_key), principal, user or principal.rsplit("/", 1)[1])


def key_for(principal: str) -> str:
    return next(key for key, who in ACCESS_KEYS.items() if who == principal)


class RecordingStepFunctions:
    """Step Functions at the approval desk's boundary: records each task answer, or fails with ``error``."""

    def __init__(self, error: str = "") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def _answer(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls.append((operation, params))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "task gone"}}, operation)
        return {}

    def send_task_success(self, **params: Any) -> dict[str, Any]:
        return self._answer("SendTaskSuccess", **params)

    def send_task_failure(self, **params: Any) -> dict[str, Any]:
        return self._answer("SendTaskFailure", **params)

    def send_task_heartbeat(self, **params: Any) -> dict[str, Any]:
        return self._answer("SendTaskHeartbeat", **params)


def await_approval(
    svc: Services,
    dynamodb: Any,
    order_id: str,
    token: str = "task-token-1",  # noqa: S107 - a Step Functions task token, not a secret
    submitted_by: str | None = None,
) -> RecordingStepFunctions:
    """Do what the order flow's approval step does (a PENDING request with its task token) and
    answer the desk's Step Functions calls with a recorder."""
    record = svc.orders.get(order_id)
    assert record is not None
    store = DynamoApprovalStore(dynamodb, svc.settings.order_approvals_table)
    pending = PendingApproval(
        order_id=order_id,
        task_token=token,
        status=PENDING,
        execution_id="arn:aws:states:us-east-1:123456789012:execution:order-flow:1",
        account=record.account,
        submitted_by=record.submitted_by if submitted_by is None else submitted_by,
        expires_at="2099-01-01T00:00:00+00:00",
    )
    assert store.create_pending(pending, {"symbol": record.symbol})
    return use_step_functions(svc, dynamodb)


def use_step_functions(svc: Services, dynamodb: Any, error: str = "") -> RecordingStepFunctions:
    """The desk over moto's OrderApprovals table, answering the waiting task through a recorder."""
    sfn = RecordingStepFunctions(error)
    svc.approvals = StepFunctionsApprovalDesk(dynamodb, svc.settings.order_approvals_table, lambda: sfn)
    return sfn
