"""LedgerFunction: SQS (LedgerQueue) -> trades, positions and order cancellations in PostgreSQL,
partial batch failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from ledger.handler import record_ledger_message

from meridian import powertools
from meridian.consumers import process_batch

logger = Logger()
tracer = powertools.tracer()
metrics = powertools.metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    metrics.add_metric(name="LedgerMessages", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return process_batch(event, context, record_ledger_message)
