"""Lambda entry points of the order-flow state machine's logic steps (one function per step).

Each handler parses its step's input, calls one function of the ``order_flow`` package and returns
JSON. Errors keep their class names: the state machine catches them by name (``OrderInvalidError``,
``RiskLimitBreachedError``, ``NodeRejectedError``, ``HotpathUnavailable`` ...).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from order_flow import intake, risk, routing
from order_flow.config import settings
from order_flow.models import FlowOrder

from meridian import aws_clients as aws
from meridian import powertools
from meridian.approvals import approval
from meridian.approvals.store import DynamoApprovalStore
from meridian.routing import Router

logger = Logger(service="order_flow")
tracer = powertools.tracer("order_flow")


class SnsNotifier:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None:
        aws.client("sns").publish(
            TopicArn=self.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def intake_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"input": <execution input>} -> {"order": ...}"""
    s = settings()
    reader = intake.DynamoOrderReader(aws.client("dynamodb"), s.orders_table)
    taken: dict[str, Any] = intake.intake(event.get("input") or {}, reader, s.exposure_table)
    logger.info("order taken in", extra={"order_id": taken["order"]["order_id"], "valid": taken["valid"]})
    return taken


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def risk_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"order", "input": <execution input>} -> {"allowed", "reason", "message", "notional", "reasons"}"""
    s = settings()
    order = FlowOrder.model_validate(event["order"])
    held_for = risk.held_for(event.get("input"))
    try:
        assessment = risk.assess(order, s.large_order_notional, s.max_order_notional, s.restricted, held_for)
    except risk.RiskLimitBreachedError as exc:
        return {"allowed": False, "reason": exc.reason, "message": str(exc), "notional": "", "reasons": []}
    return {"allowed": True, "reason": "", "message": "", **assessment.model_dump(mode="json")}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def request_approval_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The ``.waitForTaskToken`` step: record the pending approval, notify compliance officers."""
    s = settings()
    store = DynamoApprovalStore(aws.client("dynamodb"), s.order_approvals_table)
    requested: dict[str, Any] = approval.request_approval(
        event, store, SnsNotifier(s.compliance_approvals_topic_arn), s.approval_api_url
    )
    return requested


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def route_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"order": ...} -> the node's answer as record writes, counterparty writes and event batches."""
    s = settings()
    order = FlowOrder.model_validate(event["order"])
    client = Router.from_environment().client_for(order.symbol)
    reader = intake.DynamoOrderReader(aws.client("dynamodb"), s.orders_table)
    try:
        result: dict[str, Any] = routing.route_order(
            order,
            client,
            s.event_bus_name,
            datetime.now(UTC),
            (s.orders_table, s.exposure_table),
            reader.records,
        )
    except routing.NodeRejectedError as exc:
        logger.info("node rejected", extra={"order_id": order.order_id, "reason": exc.reason})
        rejected: dict[str, Any] = routing.rejected_answer(exc)
        return rejected
    logger.info("routed", extra={"order_id": order.order_id, "status": result["record"]["status"]})
    return result
