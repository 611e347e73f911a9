"""The batch processor's record handler for LedgerFunction: one queued event -> one idempotent
ledger transaction: a trade (trade.executed.v1: the trade and both positions) or an order's
cancellation (order.cancelled.v1: why it lost its open quantity)."""

from __future__ import annotations

import psycopg
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meridian import db, powertools
from meridian.consumers import PoisonMessageError, expect, parse_queued_event
from meridian.events import OrderCancelled, TradeExecuted
from meridian.ledger import ExecutionIdCollisionError, record_cancellation, record_trade

logger = Logger(child=True)
metrics = powertools.metrics()


def record_ledger_message(record: SQSRecord) -> bool:
    """Record the trade or cancellation in ``record``; True if new, False if already recorded."""
    try:
        detail = parse_queued_event(record.body)
        if isinstance(detail, OrderCancelled):
            return _record_cancellation(detail)
        trade = expect(detail, TradeExecuted)
    except PoisonMessageError as exc:
        logger.warning(
            "poison message: reported as failed, reaches the DLQ after its last receive",
            extra={"message_id": record.message_id, "reason": exc.reason, "receives": _receives(record)},
        )
        raise
    try:
        recorded = record_trade(db.shared_connection(), trade)
    except psycopg.OperationalError:
        db.reset_shared_connection()  # the connection may be dead; the retry gets a new one
        raise
    except ExecutionIdCollisionError as exc:
        logger.error(
            "execution id collision: reported as failed, reaches the DLQ after its last receive",
            extra={"execution_id": exc.execution_id, "differences": exc.differences},
        )
        metrics.add_metric(name="ExecutionIdCollisions", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(
        name="TradesRecorded" if recorded else "DuplicateTrades", unit=MetricUnit.Count, value=1
    )
    if not recorded:
        logger.info("trade already recorded", extra={"execution_id": trade.execution_id})
    return recorded


def _record_cancellation(cancel: OrderCancelled) -> bool:
    try:
        recorded = record_cancellation(db.shared_connection(), cancel)
    except psycopg.OperationalError:
        db.reset_shared_connection()
        raise
    metrics.add_metric(
        name="CancellationsRecorded" if recorded else "DuplicateCancellations", unit=MetricUnit.Count, value=1
    )
    return recorded


def _receives(record: SQSRecord) -> str:
    return str(record.attributes.approximate_receive_count)
