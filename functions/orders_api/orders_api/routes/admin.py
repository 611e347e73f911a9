"""Operator routes: health, halt and resume."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from orders_api import logic
from orders_api.models import HealthOut, TradingControlOut, TradingControlRequest
from orders_api.routes.common import caller, errors, new_router, ok, svc

router = new_router()


@router.get(
    "/health",
    summary="Service health",
    tags=["operations"],
    responses={**ok(200, HealthOut, "Health"), **errors()},
)
def get_health() -> HealthOut:
    return logic.admin.health(svc(), caller(router))


@router.post(
    "/admin/halt",
    summary="Halt trading in one symbol, or everywhere",
    tags=["operations"],
    responses={**ok(200, TradingControlOut, "Trading halted"), **errors(404, 415)},
)
def post_halt(request: Annotated[TradingControlRequest, Body()]) -> TradingControlOut:
    return logic.admin.set_trading(svc(), caller(router), request, halted=True)


@router.post(
    "/admin/resume",
    summary="Resume trading in one symbol, or everywhere",
    tags=["operations"],
    responses={**ok(200, TradingControlOut, "Trading resumed"), **errors(404, 415)},
)
def post_resume(request: Annotated[TradingControlRequest, Body()]) -> TradingControlOut:
    return logic.admin.set_trading(svc(), caller(router), request, halted=False)
