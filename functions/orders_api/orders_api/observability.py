"""Powertools Logger, Tracer and Metrics, and the middleware that measures every route.

Every request emits ``ApiLatency`` (milliseconds: the function's time for the request, whatever the
route) with the route (``POST /orders``, API Gateway's resource template) as a dimension; every
refused order adds one ``Rejects`` with the reason as its dimension. Each invocation flushes its own
metrics (``log_metrics``), one EMF document per request, as in Lambda.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from meridian import powertools
from orders_api.errors import OrderRefusedError

SERVICE = "orders_api"
logger = Logger(service=SERVICE)
tracer = powertools.tracer(SERVICE)
metrics = powertools.metrics(SERVICE)


def count_reject(reason: str) -> None:
    with single_metric(name="Rejects", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="reason", value=reason)


def measure(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Name the route in traces and metrics; count refused orders by reason."""
    route = app.context.get("_route")
    name = f"{app.current_event.http_method} {getattr(route, 'path', '?')}"
    tracer.put_annotation(key="route", value=name)  # the metrics carry it as their ``route`` dimension
    try:
        response = next_middleware(app)
    except OrderRefusedError as exc:
        count_reject(exc.code)
        raise
    if response.status_code == 422 and isinstance(response.body, dict) and "error" in response.body:
        count_reject(str(response.body["error"]))  # an order the matching node refused
    return response


def route_of(event: dict[str, Any]) -> str:
    """``METHOD /resource/{template}`` of an API Gateway proxy event (never a concrete id)."""
    resource = event.get("resource") if isinstance(event, dict) else None
    method = event.get("httpMethod") if isinstance(event, dict) else None
    return f"{method or '?'} {resource or '?'}"


def timed(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Emit ``ApiLatency`` (route as a dimension) for every request, refused ones included."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        route = route_of(event)  # before the resolver, which rewrites the event's resource
        try:
            return handler(event, context)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.add_dimension(name="route", value=route)
            metrics.add_metric(name="ApiLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)

    return wrapper
