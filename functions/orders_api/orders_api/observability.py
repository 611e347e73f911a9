"""Powertools Logger, Tracer and Metrics, and the middleware that measures every route.

Every request emits ``OrderLatency`` (milliseconds, the route in its metadata); every refused order adds
one ``Rejects`` with the reason as its dimension.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from orders_api.errors import OrderRefusedError

SERVICE = "orders_api"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE)


def count_reject(reason: str) -> None:
    with single_metric(name="Rejects", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="reason", value=reason)


def measure(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    route = app.context.get("_route")
    name = f"{app.current_event.http_method} {getattr(route, 'path', '?')}"
    tracer.put_annotation(key="route", value=name)
    started = time.perf_counter()
    try:
        response = next_middleware(app)
    except OrderRefusedError as exc:
        count_reject(exc.code)
        raise
    finally:
        metrics.add_metadata(key="route", value=name)
        metrics.add_metric(
            name="OrderLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
    if response.status_code == 422 and isinstance(response.body, dict) and "error" in response.body:
        count_reject(str(response.body["error"]))  # an order the matching node refused
    return response
