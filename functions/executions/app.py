"""ExecutionsFunction: Kinesis (ExecutionsStream, the nodes' drop copy) -> trade.executed.v1 on the bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from executions.config import settings
from executions.consumer import UnreadableRecordAtHeadError, consume

from meridian import aws_clients as aws
from meridian import powertools

logger = Logger()
tracer = powertools.tracer()
metrics = powertools.metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        outcome = consume(event, context, aws.client("events"), settings().event_bus_name)
    except UnreadableRecordAtHeadError:
        metrics.add_metric(name="UnreadableDropCopyRecords", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="DropCopyRecords", unit=MetricUnit.Count, value=outcome.records)
    metrics.add_metric(name="TradesPublished", unit=MetricUnit.Count, value=outcome.published)
    metrics.add_metric(name="DuplicateDropCopyRecords", unit=MetricUnit.Count, value=outcome.duplicates)
    metrics.add_metric(name="UnreadableDropCopyRecords", unit=MetricUnit.Count, value=outcome.unreadable)
    metrics.add_metric(name="UndeliveredTradeEvents", unit=MetricUnit.Count, value=outcome.undelivered)
    response: PartialItemFailureResponse = outcome.response
    return response
