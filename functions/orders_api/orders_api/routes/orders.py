"""Order routes: submit, read, list, cancel, replace, and the compliance decision."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from meridian.orders.record import OrderStatusName
from orders_api import logic
from orders_api.models import (
    ApprovalRequest,
    FillList,
    OrderList,
    OrderOut,
    OrderRequest,
    ReplaceRequest,
    SymbolName,
)
from orders_api.routes.common import caller, errors, new_router, ok, svc

router = new_router()
TAGS = ["orders"]

OrderId = Annotated[str, Path(min_length=1, max_length=64, description="The order's id (ord_...)")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        description="Retries with the same key return the first answer and never place a second order",
    ),
]


@router.post(
    "/orders",
    summary="Submit an order",
    tags=TAGS,
    responses={
        **ok(201, OrderOut, "Accepted by the matching node (fills made at once are listed)"),
        **ok(202, OrderOut, "Held for compliance approval (PENDING_APPROVAL)"),
        **errors(409, 415, 503),
    },
)
def post_order(
    order: Annotated[OrderRequest, Body()], idempotency_key: IdempotencyKey = None
) -> Response[Any]:
    answer = logic.submit.submit_order(svc(), caller(router), order, idempotency_key, router.lambda_context)
    body = answer.order if answer.order is not None else answer.error
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return Response(
        status_code=answer.status_code,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump(mode="json") if body is not None else None,
        headers=headers,
    )


@router.get(
    "/orders/<order_id>",
    summary="Read one order",
    tags=TAGS,
    responses={**ok(200, OrderOut, "The order"), **errors(404)},
)
def get_order(order_id: OrderId) -> OrderOut:
    return logic.queries.get_order(svc(), caller(router), order_id)


@router.get(
    "/orders/<order_id>/fills",
    summary="Every fill of one order",
    description=(
        "All the fills of the order, oldest first, whichever request's answer they came in (a resting "
        "order is filled by other orders' requests), as the ledger recorded them from the matching "
        "node's drop copy: a fill appears here moments after it happened."
    ),
    tags=TAGS,
    responses={**ok(200, FillList, "The order's fills"), **errors(404)},
)
def get_order_fills(order_id: OrderId) -> FillList:
    return logic.queries.order_fills(svc(), caller(router), order_id)


@router.get(
    "/orders",
    summary="List orders, newest first",
    tags=TAGS,
    responses={**ok(200, OrderList, "A page of orders"), **errors()},
)
def list_orders(
    status: Annotated[OrderStatusName | None, Query()] = None,
    symbol: Annotated[SymbolName | None, Query()] = None,
    account: Annotated[str | None, Query(min_length=1, max_length=16, description="Officers only")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
) -> OrderList:
    return logic.queries.list_orders(
        svc(),
        caller(router),
        status=status,
        symbol=symbol,
        account=account,
        limit=limit,
        next_token=next_token,
    )


@router.delete(
    "/orders/<order_id>",
    summary="Cancel an order",
    tags=TAGS,
    responses={**ok(200, OrderOut, "The cancelled order"), **errors(404, 409, 503)},
)
def cancel_order(order_id: OrderId) -> OrderOut:
    return logic.manage.cancel_order(svc(), caller(router), order_id)


@router.patch(
    "/orders/<order_id>",
    summary="Replace an order's open quantity and/or price",
    tags=TAGS,
    responses={**ok(200, OrderOut, "The order after the change"), **errors(404, 409, 415, 503)},
)
def replace_order(order_id: OrderId, change: Annotated[ReplaceRequest, Body()]) -> OrderOut:
    return logic.manage.replace_order(svc(), caller(router), order_id, change)


@router.post(
    "/orders/<order_id>/approval",
    summary="Approve or reject an order held for compliance",
    description=(
        "Answers the order flow waiting on the approval (approve: it routes the order; reject: the "
        "order ends REJECTED) and records the decision on the order. 403 SELF_APPROVAL: the caller "
        "submitted the order; 404 APPROVAL_NOT_FOUND: no approval was requested (yet) for the order; "
        "409 APPROVAL_ALREADY_DECIDED / APPROVAL_EXPIRED / NOT_PENDING_APPROVAL."
    ),
    tags=["compliance"],
    responses={
        **ok(200, OrderOut, "The order with the decision recorded; the order flow was answered"),
        **errors(404, 409, 415),
    },
)
def decide_approval(order_id: OrderId, decision: Annotated[ApprovalRequest, Body()]) -> OrderOut:
    return logic.manage.decide_approval(svc(), caller(router), order_id, decision)
