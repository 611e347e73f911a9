"""ExecutionsFunction: Kinesis (ExecutionsStream, the nodes' drop copy) -> trade.executed.v1 on the bus."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from executions.consumer import UnreadableRecordAtHeadError, consume

from meridian import aws_clients as aws
from meridian.aws_clients import TRACED_MODULES
from meridian.events import BUS_NAME_ENV

logger = Logger()
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Meridian"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        outcome = consume(event, context, aws.client("events"), os.environ[BUS_NAME_ENV])
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
