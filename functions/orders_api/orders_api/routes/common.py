"""What every route needs: the caller, the services, and OpenAPI error declarations."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from orders_api import services
from orders_api.auth import Caller, resolve_caller
from orders_api.models import ErrorResponse

_DESCRIPTIONS = {
    400: "Bad request",
    403: "Not allowed for this identity",
    404: "Not found (or not yours)",
    409: "Conflicts with the order's state",
    415: "Unsupported media type",
    422: "Invalid request or refused by risk checks (error = reason code)",
    500: "Unexpected failure",
    503: "Matching node unavailable; retry after Retry-After seconds",
}


def ok(status: int, model: Any, description: str) -> dict[int, OpenAPIResponse]:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


def errors(*statuses: int) -> dict[int, OpenAPIResponse]:
    """Error answers of a route (403, 422 and 500 are possible on every route)."""
    declared: dict[int, OpenAPIResponse] = {}
    for status in sorted({403, 422, 500, *statuses}):
        response: OpenAPIResponse = {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorResponse}},
        }
        if status == 503:
            response["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
        declared[status] = response
    return declared


def new_router() -> Router:
    return Router()  # type: ignore[no-untyped-call] # Powertools' constructor has no annotations


def caller(router: Router) -> Caller:
    context = router.current_event.get("requestContext") or {}
    identity = context.get("identity") or {}
    return resolve_caller(identity, services.current().reference.principal)


def svc() -> services.Services:
    return services.current()
