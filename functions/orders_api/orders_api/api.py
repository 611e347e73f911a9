"""The resolver: routes, error mapping, validation and the measuring middleware, wired once."""

from __future__ import annotations

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


app = create_app()
