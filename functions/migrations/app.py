"""MigrationsFunction: the Custom::LedgerMigrations resource, answered on every request."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from migrations.cfn_response import Responder
from migrations.resource import handle

from meridian import db

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    try:
        handle(event, context.get_remaining_time_in_millis(), db.connect, Responder(event))
    except Exception:
        logger.exception("migrations failed; CloudFormation was told FAILED")
