"""The template's post-trade section agrees with the code it deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from meridian.ledger import latest_version
from meridian_local.delivery.pollers import load_handler
from tools.cfn_model import StackModel

REPO = Path(__file__).resolve().parents[3]
RESOURCES: dict[str, Any] = yaml_parse((REPO / "template.yaml").read_text())["Resources"]
OBSERVABILITY: dict[str, Any] = yaml_parse((REPO / "stacks/observability.yaml").read_text())["Resources"]
STREAMING: dict[str, Any] = yaml_parse((REPO / "stacks/streaming.yaml").read_text())
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


def _from_streaming_stack(value: dict[str, Any]) -> Any:
    """What a root reference to a streaming stack output names there (``{"Ref": "MarketDataStream"}``)."""
    stack, output = value["Fn::GetAtt"]
    assert stack == "StreamingStack"
    return STREAMING["Outputs"][output.removeprefix("Outputs.")]["Value"]


def test_market_data_mapping_batches_and_reports_failures() -> None:
    stream = dict(STREAMING["Resources"]["MarketDataStream"]["Properties"])
    assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
    event = props("MarketDataFunctionStream")
    assert event["FunctionName"] == {"Ref": "MarketDataFunction"}
    assert _from_streaming_stack(event["EventSourceArn"]) == {"Fn::GetAtt": ["MarketDataStream", "Arn"]}
    assert event["BatchSize"] == 10000
    assert event["BisectBatchOnFunctionError"] is True
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in event["DestinationConfig"]
    table = props("MarketDataTable")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    archive = STREAMING["Resources"]["MarketDataFirehose"]["Properties"]["ExtendedS3DestinationConfiguration"]
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


@pytest.mark.parametrize(
    ("stream", "shards", "mode"),
    [
        ("MarketDataStream", "MarketDataShardCount", "MarketDataStreamMode"),
        ("ExecutionsStream", "ExecutionsShardCount", "ExecutionsStreamMode"),
    ],
)
def test_stream_capacity_is_shards_from_a_parameter_or_on_demand(stream: str, shards: str, mode: str) -> None:
    """10 and 4 shards in prod and dr (samconfig.toml), fewer in dev; ON_DEMAND takes no shard count."""
    provisioned = StackModel(
        str(REPO / "template.yaml"), {shards: "7"}, "us-east-1", "meridian-dev", "dev"
    ).nested("StreamingStack")
    assert int(provisioned.properties(stream)["ShardCount"]) == 7
    assert provisioned.properties(stream)["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    on_demand = StackModel(
        str(REPO / "template.yaml"), {mode: "ON_DEMAND"}, "us-east-1", "meridian-dev", "dev"
    ).nested("StreamingStack")
    assert "ShardCount" not in on_demand.properties(stream)
    assert on_demand.properties(stream)["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}


@pytest.mark.parametrize("stream", ["MarketDataStream", "ExecutionsStream"])
def test_write_throttling_on_each_stream_alarms(stream: str) -> None:
    """The alarms live in the observability stack, which the root hands the stream and the topic."""
    passed = props("ObservabilityStack")["Parameters"]
    assert _from_streaming_stack(passed[f"{stream}Name"]) == {"Ref": stream}
    assert passed["TradingAlertsTopicArn"] == {"Ref": "TradingAlertsTopic"}
    [alarm] = [
        dict(resource["Properties"])
        for resource in OBSERVABILITY.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and resource["Properties"].get("MetricName") == "WriteProvisionedThroughputExceeded"
        and resource["Properties"]["Dimensions"]
        == [{"Name": "StreamName", "Value": {"Ref": f"{stream}Name"}}]
    ]
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("AWS/Kinesis", "Sum", 0)
    assert alarm["AlarmActions"] == [{"Ref": "TradingAlertsTopicArn"}]


def _root_name(value: dict[str, Any]) -> str:
    """The logical id a parameter the root passes refers to (a stream through its streaming stack)."""
    found = value if "Ref" in value else _from_streaming_stack(value)
    return str(found["Ref"])


def test_the_consumers_and_the_market_data_streams_readers_alarm_when_behind() -> None:
    """The alarms live in the observability stack; each dimension is a parameter the root fills."""
    passed = props("ObservabilityStack")["Parameters"]
    ages = {
        (alarm["Namespace"], alarm["MetricName"], _root_name(passed[alarm["Dimensions"][0]["Value"]["Ref"]]))
        for alarm in (resource["Properties"] for resource in OBSERVABILITY.values())
        if "IteratorAge" in alarm.get("MetricName", "")
    }
    assert ages == {
        ("AWS/Lambda", "IteratorAge", "MarketDataFunction"),
        ("AWS/Lambda", "IteratorAge", "ExecutionsFunction"),
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "MarketDataStream"),  # the archive too
    }
