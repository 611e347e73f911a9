"""The template's post-trade section agrees with the code it deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from meridian.ledger import latest_version
from meridian_local.pollers import load_handler

REPO = Path(__file__).resolve().parents[3]
RESOURCES: dict[str, Any] = yaml_parse((REPO / "template.yaml").read_text())["Resources"]
CONSUMERS = {"LedgerQueue": "LedgerFunction", "SurveillanceQueue": "SurveillanceFunction"}
POST_TRADE_FUNCTIONS = [
    "LedgerFunction",
    "SurveillanceFunction",
    "MarketDataFunction",
    "MigrationsFunction",
    "ExecutionsFunction",
]


def props(logical_id: str) -> dict[str, Any]:
    return dict(RESOURCES[logical_id]["Properties"])


def test_the_migrations_resource_names_the_newest_schema() -> None:
    assert props("LedgerMigrations")["SchemaVersion"] == str(latest_version())
    assert RESOURCES["LedgerMigrations"]["Type"] == "Custom::LedgerMigrations"


@pytest.mark.parametrize(("queue", "function"), CONSUMERS.items())
def test_queues_redrive_and_outlast_their_consumer(queue: str, function: str) -> None:
    q, fn = props(queue), props(function)
    assert q["DelaySeconds"] == 0
    assert q["MessageRetentionPeriod"] == 1209600
    assert q["RedrivePolicy"]["maxReceiveCount"] == 5
    assert "KmsMasterKeyId" in q
    [event] = fn["Events"].values()
    window = event["Properties"]["MaximumBatchingWindowInSeconds"]
    assert q["VisibilityTimeout"] > 6 * fn["Timeout"] + window
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_rules_route_by_detail_type() -> None:
    assert props("LedgerTradesRule")["EventPattern"]["detail-type"] == ["trade.executed.v1"]
    assert props("SurveillanceEventsRule")["EventPattern"]["detail-type"] == [
        {"prefix": "order."},
        {"prefix": "trade."},
        {"prefix": "trading."},
    ]


def test_market_data_mapping_batches_and_reports_failures() -> None:
    stream = props("MarketDataStream")
    # 10 shards in prod and dr (samconfig.toml), fewer in dev.
    assert stream["ShardCount"] == {"Ref": "MarketDataShardCount"}
    assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
    event = props("MarketDataFunctionStream")
    assert event["FunctionName"] == {"Ref": "MarketDataFunction"}
    assert event["EventSourceArn"] == {"Fn::GetAtt": ["MarketDataStream", "Arn"]}
    assert event["BatchSize"] == 10000
    assert event["BisectBatchOnFunctionError"] is True
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in event["DestinationConfig"]
    table = props("MarketDataTable")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    archive = props("MarketDataFirehose")["ExtendedS3DestinationConfiguration"]
    assert archive["CompressionFormat"] == "GZIP"
    assert (
        archive["Prefix"] == "market-data/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"
    )


@pytest.mark.parametrize("function", POST_TRADE_FUNCTIONS)
def test_every_function_has_its_code_and_sample_events(function: str) -> None:
    fn = props(function)
    code = REPO / fn["CodeUri"]
    assert callable(load_handler(code, fn["Handler"]))
    assert list((REPO / "events" / code.name).glob("*.json")), f"events/{code.name}/ has no sample event"
