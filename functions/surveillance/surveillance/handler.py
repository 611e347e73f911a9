"""The batch processor's record handler for SurveillanceFunction."""

from __future__ import annotations

from functools import lru_cache

import psycopg
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meridian import aws_clients, db, powertools
from meridian.consumers import PoisonMessageError, parse_queued_event

from .alerts import SnsAlerts
from .config import settings
from .consumer import SurveillanceConfig, surveil

logger = Logger(child=True)
metrics = powertools.metrics()


@lru_cache(maxsize=1)
def config() -> SurveillanceConfig:
    return SurveillanceConfig.from_env()


@lru_cache(maxsize=1)
def alerts() -> SnsAlerts:
    return SnsAlerts(aws_clients.client("sns"), settings().compliance_alerts_topic_arn)


def surveil_message(record: SQSRecord) -> int:
    """Surveil the event in ``record``; returns how many alerts it sent."""
    try:
        detail = parse_queued_event(record.body)
    except PoisonMessageError as exc:
        logger.warning(
            "poison message: reported as failed, reaches the DLQ after its last receive",
            extra={"message_id": record.message_id, "reason": exc.reason},
        )
        raise
    try:
        sent = surveil(db.shared_connection(), detail, config(), alerts())
    except psycopg.OperationalError:
        db.reset_shared_connection()
        raise
    for finding in sent:
        logger.info("surveillance finding", extra={"finding_id": finding.finding_id, "rule": finding.rule})
        metrics.add_metric(name=f"Finding_{finding.rule}", unit=MetricUnit.Count, value=1)
    return len(sent)
