"""The public market-data stream has one writer, the matching nodes, and no EventBridge rule feeds it.

Lifecycle events carry both sides' accounts and client order ids; the stream is public data (the
order API's tape, the Firehose archive), so nothing may copy events onto it. The nodes alone
guarantee the tape (docs/post-trade.md, "Market data").
"""

from __future__ import annotations

import json
from typing import Any

from tests.infra.templates import (
    HOTPATH_TEMPLATE,
    ROOT_TEMPLATE,
    STREAM_ARNS,
    STREAM_NAMES,
    STREAMING_TEMPLATE,
    all_template_paths,
    as_list,
    branches,
    load,
    policy_documents,
    properties,
    resources,
    transformed,
)

KINESIS_PUTS = {"kinesis:PutRecord", "kinesis:PutRecords"}


def _template(path: str) -> dict[str, Any]:
    """The root after the SAM transform (function and state machine events become rules too)."""
    return transformed(path) if path == ROOT_TEMPLATE else load(path)


def _feeds_a_stream(target: dict[str, Any]) -> bool:
    text = json.dumps(target.get("Arn"))
    return "MarketDataStream" in text or ":kinesis:" in text or "KinesisParameters" in target


def test_no_eventbridge_rule_targets_the_market_data_stream() -> None:
    rules = 0
    offending = []
    for path in all_template_paths():
        for name, rule in resources(_template(path), "AWS::Events::Rule").items():
            rules += 1
            for targets in branches(rule.get("Properties", {}).get("Targets")):
                for target in as_list(targets):
                    if isinstance(target, dict) and _feeds_a_stream(target):
                        offending.append((path, name, target.get("Id")))
    assert rules >= 3, "the ledger, surveillance and pipeline rules were found"
    assert not offending, f"rules putting events on a stream: {offending}"


def test_only_the_matching_nodes_may_put_records_on_the_market_data_stream() -> None:
    writers = []
    for path in all_template_paths():
        for document in policy_documents(_template(path)):
            for statement in document.statements():
                actions = set(as_list(statement.get("Action")))
                resource = json.dumps(statement.get("Resource"))
                if actions & KINESIS_PUTS and "MarketDataStream" in resource:
                    writers.append((path, document.logical_id, statement.get("Sid")))
    assert writers == [(HOTPATH_TEMPLATE, "NodeInstanceRole", "PublishMarketData")]
    passed = load(ROOT_TEMPLATE)["Resources"]["HotpathStack"]["Properties"]["Parameters"]
    assert passed["MarketDataStreamName"] == STREAM_NAMES["MarketDataStream"]


def test_the_stream_is_archived_and_consumed_only() -> None:
    """Its other principals read it: the market-data function and the archive's Firehose."""
    root = transformed(ROOT_TEMPLATE)
    readers = {
        m["Properties"]["FunctionName"]["Ref"]
        for m in resources(root, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == STREAM_ARNS["MarketDataStream"]
    }
    assert readers == {"MarketDataFunction"}
    source = properties(load(STREAMING_TEMPLATE), "MarketDataFirehose")["KinesisStreamSourceConfiguration"]
    assert source["KinesisStreamARN"] == {"Fn::GetAtt": ["MarketDataStream", "Arn"]}


def test_the_streaming_stack_publishes_each_stream_by_name_and_arn() -> None:
    """What the root reads as STREAM_NAMES and STREAM_ARNS is the streaming stack's own streams."""
    outputs = load(STREAMING_TEMPLATE)["Outputs"]
    for stream in ("MarketDataStream", "ExecutionsStream"):
        name = STREAM_NAMES[stream]["Fn::GetAtt"][1].removeprefix("Outputs.")
        arn = STREAM_ARNS[stream]["Fn::GetAtt"][1].removeprefix("Outputs.")
        assert outputs[name]["Value"] == {"Ref": stream}
        assert outputs[arn]["Value"] == {"Fn::GetAtt": [stream, "Arn"]}
