"""The resolver: routes, error mapping, validation and the measuring middleware, wired once."""

from __future__ import annotations

import os
import re

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from orders_api import errors
from orders_api.observability import measure
from orders_api.routes import admin, orders, portfolio

TITLE = "Meridian Order API"
VERSION = "1.0.0"


class ExactPathResolver(APIGatewayRestResolver):
    """Routes anchored at the real end of the path.

    The base class anchors with ``$``, which also matches before a trailing newline, so
    ``GET /orders/%0A`` would be answered by the ``GET /orders`` list route.
    """

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = r"^{}/*\Z") -> re.Pattern[str]:
        compiled: re.Pattern[str] = ApiGatewayResolver._compile_regex(rule, base_regex)
        return compiled


def create_app() -> APIGatewayRestResolver:
    app = ExactPathResolver(enable_validation=True)
    app.configure_openapi(
        title=TITLE,
        version=VERSION,
        description="Orders, positions, trades and market data of the Meridian trading platform. "
        "Every request is signed with AWS SigV4 by an IAM role of its user type.",
    )
    for router in (orders.router, portfolio.router, admin.router):
        app.include_router(router)
    app.use(middlewares=[measure])
    errors.install(app)
    return app


def build_models_now() -> int:
    """Import every route's rules and build every model's validator now (both wait for first use
    otherwise): what a container initialised for provisioned concurrency should pay in its init,
    which no request waits for, rather than in its first requests. Returns how many models it built."""
    from pydantic import BaseModel  # noqa: PLC0415

    from meridian import events  # noqa: PLC0415
    from meridian.approvals import models as approval_models  # noqa: PLC0415
    from meridian.orders import record  # noqa: PLC0415
    from orders_api import logic, models  # noqa: PLC0415

    logic.load_all()  # the rules of every route, imported on first use otherwise
    built = 0
    for module in (models, events, approval_models, record):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                value.model_rebuild(force=True)
                built += 1
    return built


app = create_app()
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency":
    build_models_now()
