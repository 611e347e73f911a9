"""The order API of a DR world's region: its local settings, its principals and POST /orders.

A switchover's recovery time ends with the first order the region's API accepts; the runbook tests
and the drill submit it through the real order function, invoked as API Gateway's proxy integration
invokes it (the caller's identity in ``requestContext``).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from meridian_local.apigateway.apigw_events import json_body, proxy_event
from meridian_local.cloud.runbook_stack import RunbookStack
from meridian_local.drills.drill_keys import orders_environment


class RunningNode(Protocol):
    """A matching node serving on 127.0.0.1."""

    @property
    def port(self) -> int: ...


def routes(node: RunningNode) -> str:
    """``MERIDIAN_ROUTES`` sending every symbol to ``node``."""
    return json.dumps({"default": f"127.0.0.1:{node.port}"})


def order_api_environment(database_url: str, node: RunningNode | None) -> dict[str, str]:
    """The order API function's local settings: this region's ledger and serving node."""
    return {
        "DATABASE_URL": database_url,
        "MERIDIAN_ROUTES_PARAMETER": "",
        "MERIDIAN_ROUTES": routes(node) if node is not None else json.dumps({}),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **orders_environment(),  # the drill's traders' session key
    }


def register_principal(stack: RunbookStack, principal: str, user_type: str, account: str | None) -> None:
    """A principal of the order API (written where the stack's Principals table or replica is)."""
    item: dict[str, Any] = {"principal": {"S": principal}, "user_type": {"S": user_type}}
    if account:
        item["account"] = {"S": account}
    stack.client("dynamodb").put_item(TableName=stack.refs["PrincipalsTable"], Item=item)


def submit(
    stack: RunbookStack, principal: str, order: dict[str, Any], idempotency_key: str | None = None
) -> tuple[int, Any]:
    """POST /orders through this region's order API function, as API Gateway invokes it."""
    headers = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    event = proxy_event("POST", "/orders", user_arn=principal, body=json.dumps(order), headers=headers)
    answer = stack.client("lambda").invoke(
        FunctionName=stack.refs["OrdersApiFunction"], Payload=json.dumps(event).encode()
    )
    response = json.loads(answer["Payload"].read())
    if answer.get("FunctionError"):
        raise RuntimeError(f"the order API failed: {response}")
    return int(response["statusCode"]), json_body(response)
