"""MarketDataFunction: Kinesis (MarketDataStream) -> books and trades in the MarketData table."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from market_data.consumer import consume, trade_ttl_seconds, writer_from_env

from meridian import powertools

logger = Logger()
tracer = powertools.tracer()
metrics = powertools.metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    outcome = consume(event, context, writer_from_env(), trade_ttl_seconds())
    metrics.add_metric(name="MarketDataRecords", unit=MetricUnit.Count, value=outcome.records)
    metrics.add_metric(
        name="MarketDataItemsWritten", unit=MetricUnit.Count, value=outcome.report.items_written
    )
    metrics.add_metric(
        name="MarketDataStaleBooks", unit=MetricUnit.Count, value=outcome.report.stale_books_skipped
    )
    metrics.add_metric(
        name="MarketDataKnownTradesSkipped", unit=MetricUnit.Count, value=outcome.report.known_trades_skipped
    )
    metrics.add_metric(
        name="MarketDataFailures", unit=MetricUnit.Count, value=len(outcome.response["batchItemFailures"])
    )
    response: PartialItemFailureResponse = outcome.response
    return response
