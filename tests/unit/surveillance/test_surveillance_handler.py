"""SurveillanceFunction's handler on the sample events: PostgreSQL for state, SNS in moto."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian import db
from meridian_local.delivery.lambda_events import LocalLambdaContext
from meridian_local.delivery.pollers import Handler, load_handler
from tests.metrics_catalogue import FUNCTION_METRICS, assert_catalogued, emit_as_deployed, emitted, totals

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def alerts_queue(ledger_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """An SQS queue subscribed to the ComplianceAlerts topic, to read what was alerted."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_URL": ledger_database_url,
    }.items():
        monkeypatch.setenv(name, value)
    db.reset_shared_connection()
    with mock_aws():
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="compliance-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )
        monkeypatch.setenv("COMPLIANCE_ALERTS_TOPIC_ARN", topic)
        yield sqs, queue_url
    db.reset_shared_connection()


@pytest.fixture
def handler(alerts_queue: tuple[Any, str]) -> Handler:
    function = load_handler(REPO / "functions" / "surveillance", "app.lambda_handler")
    module = sys.modules["surveillance.handler"]
    module.alerts.cache_clear()
    module.config.cache_clear()
    return function


def _alerts(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sample_events_run_through_the_handler(handler: Handler, alerts_queue: tuple[Any, str]) -> None:
    sqs, url = alerts_queue
    for sample in sorted((REPO / "events" / "surveillance").glob("*.json")):
        event = json.loads(sample.read_text())
        response: Any = handler(event, LocalLambdaContext(function_name="surveillance"))
        poison = {r["messageId"] for r in event["Records"] if r["messageId"].startswith("poison")}
        assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == poison, sample.name
    alerted = _alerts(sqs, url)
    assert [(a["rule"], a["account"], a["severity"]) for a in alerted] == [("wash_trade", "ACC-4004", "HIGH")]


def test_redelivery_alerts_nothing_new(handler: Handler, alerts_queue: tuple[Any, str]) -> None:
    sqs, url = alerts_queue
    event = json.loads((REPO / "events" / "surveillance" / "lifecycle-events.json").read_text())
    handler(event, LocalLambdaContext())
    handler(event, LocalLambdaContext())
    assert len(_alerts(sqs, url)) == 1


def test_metrics_carry_the_catalogued_names_units_and_dimensions(
    alerts_queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = emit_as_deployed(monkeypatch, "SurveillanceFunction")
    handler = load_handler(REPO / "functions" / "surveillance", "app.lambda_handler")
    sys.modules["surveillance.handler"].alerts.cache_clear()
    sys.modules["surveillance.handler"].config.cache_clear()
    capsys.readouterr()
    event = json.loads((REPO / "events" / "surveillance" / "lifecycle-events.json").read_text())
    handler(event, LocalLambdaContext())
    metrics = emitted(capsys.readouterr().out)
    assert assert_catalogued("surveillance", metrics, service) == {
        "SurveillanceMessages",
        "Finding_wash_trade",
    }
    assert totals(metrics) == {"SurveillanceMessages": len(event["Records"]), "Finding_wash_trade": 1}
    rules = {
        name.removeprefix("Finding_")
        for name in FUNCTION_METRICS["surveillance"]
        if name.startswith("Finding_")
    }
    source = Path(sys.modules["surveillance.rules"].__file__ or "").read_text()
    assert rules == set(re.findall(r'rule="(\w+)"', source))  # every rule's finding is catalogued
