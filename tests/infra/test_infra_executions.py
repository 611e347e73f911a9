"""The drop copy: nodes -> ExecutionsStream (trading key) -> ExecutionsFunction -> the trading bus.

Only the matching nodes write the stream, only the executions function reads it through Kinesis,
an unreadable record ends in an alarmed, encrypted DLQ, and every node is started with the stream
and its own node number.
"""

from __future__ import annotations

import shlex
from typing import Any

from tests.infra.templates import (
    HOTPATH_TEMPLATE,
    ROOT,
    ROOT_TEMPLATE,
    STREAM_ARNS,
    STREAM_NAMES,
    STREAMING_TEMPLATE,
    as_list,
    load,
    policy_documents,
    properties,
    resources,
    transformed,
)

TEMPLATE = load(ROOT_TEMPLATE)
HOTPATH = load(HOTPATH_TEMPLATE)
STREAMING = load(STREAMING_TEMPLATE)
# What the root hands the streaming stack (its keys and capacities).
STREAMING_PARAMETERS = TEMPLATE["Resources"]["StreamingStack"]["Properties"]["Parameters"]
TRADING_KEY = {"Fn::GetAtt": ["SecurityStack", "Outputs.TradingDataKeyArn"]}
DEPLOY = ROOT / "hotpath" / "deploy"


def _function_statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = properties(template, function)["Role"]["Fn::GetAtt"][0]
    return [s for d in policy_documents(template) if d.logical_id == role for s in d.statements()]


def _via(statement: dict[str, Any]) -> str | None:
    via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
    return None if via is None else str(via["Fn::Sub"]).split(".", 1)[0]


def test_the_stream_is_encrypted_with_the_trading_key_and_kept_a_week() -> None:
    stream = properties(STREAMING, "ExecutionsStream")
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": {"Ref": "TradingDataKeyArn"}}
    assert STREAMING_PARAMETERS["TradingDataKeyArn"] == TRADING_KEY
    assert stream["RetentionPeriodHours"] >= 168


def test_the_mapping_reports_partial_failures_bisects_and_ends_in_an_alarmed_encrypted_dlq() -> None:
    template = transformed(ROOT_TEMPLATE)
    (mapping,) = [
        m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "ExecutionsFunction"}
    ]
    assert mapping["EventSourceArn"] == STREAM_ARNS["ExecutionsStream"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 1 <= mapping["MaximumRetryAttempts"] <= 100
    assert mapping["MaximumRecordAgeInSeconds"] == -1  # trades never expire by age
    dlq = {"Fn::GetAtt": ["ExecutionsDeadLetterQueue", "Arn"]}
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": dlq}}
    queue = properties(TEMPLATE, "ExecutionsDeadLetterQueue")
    assert queue["KmsMasterKeyId"] == TRADING_KEY
    assert queue["MessageRetentionPeriod"] == 1209600
    # One alarm per dead-letter queue, in the observability stack (the root adds no second one).
    assert "ExecutionsDeadLetterAlarm" not in TEMPLATE["Resources"]
    observed = TEMPLATE["Resources"]["ObservabilityStack"]["Properties"]["Parameters"]
    assert {"Fn::GetAtt": ["ExecutionsDeadLetterQueue", "QueueName"]} in observed["DeadLetterQueueNames"][
        "Fn::Join"
    ][1]


def test_the_function_puts_events_on_the_trading_bus_only_and_decrypts_through_kinesis_and_sqs() -> None:
    template = transformed(ROOT_TEMPLATE)
    statements = [s for s in _function_statements(template, "ExecutionsFunction") if s.get("Sid")]
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert {a for a in actions if a.startswith("events:")} == {"events:PutEvents"}
    for statement in statements:
        if "events:PutEvents" in as_list(statement["Action"]):
            assert statement["Resource"] == {"Fn::GetAtt": ["TradingEventBus", "Arn"]}
        if any(a.startswith("kms:") for a in as_list(statement["Action"])):
            assert statement["Resource"] == TRADING_KEY
            assert _via(statement) in {"kinesis", "sqs"}
            if _via(statement) == "kinesis":
                assert as_list(statement["Action"]) == ["kms:Decrypt"]
    assert not [a for a in actions if a.startswith(("kinesis:Put", "dynamodb:", "s3:", "sqs:Delete"))]
    variables = properties(TEMPLATE, "ExecutionsFunction")["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == {"Ref": "TradingEventBus"}


def test_no_other_stream_reader_may_decrypt_the_drop_copy() -> None:
    """The trading key through Kinesis: the executions function alone among the Kinesis consumers."""
    template = transformed(ROOT_TEMPLATE)
    streams = list(STREAM_ARNS.values())  # the streaming stack's streams, as the root reads them
    readers = {
        m["Properties"]["FunctionName"]["Ref"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] in streams
    }
    assert {"MarketDataFunction", "ExecutionsFunction"} <= readers
    for function in readers - {"ExecutionsFunction"}:
        for statement in _function_statements(template, function):
            decrypts = "kms:Decrypt" in as_list(statement.get("Action"))
            if decrypts and statement.get("Resource") == TRADING_KEY:
                assert _via(statement) == "sqs", (function, statement.get("Sid"))


# ---- the nodes -----------------------------------------------------------------------------------


def _node_statements() -> dict[str, dict[str, Any]]:
    (policy,) = properties(HOTPATH, "NodeInstanceRole")["Policies"]
    return {
        s["Sid"]: s
        for s in policy["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and "Sid" in s  # Fn::If statements are the release's
    }


def test_the_hot_path_stack_is_given_the_stream_and_the_node_number() -> None:
    passed = TEMPLATE["Resources"]["HotpathStack"]["Properties"]["Parameters"]
    assert passed["ExecutionsStreamName"] == STREAM_NAMES["ExecutionsStream"]
    assert passed["NodeNumber"] == {"Ref": "HotpathNodeNumber"}
    assert properties(STREAMING, "ExecutionsStream")["StreamEncryption"]["KeyId"] == {
        "Ref": "TradingDataKeyArn"
    }
    assert passed["TradingDataKeyArn"] == STREAMING_PARAMETERS["TradingDataKeyArn"]
    number = HOTPATH["Parameters"]["NodeNumber"]
    assert (number["Type"], number["Default"], number["MinValue"], number["MaxValue"]) == (
        "Number",
        1,
        0,
        65535,
    )
    assert TEMPLATE["Parameters"]["HotpathNodeNumber"]["Default"] == 1


def test_the_node_may_put_drop_copy_records_and_encrypt_them_nothing_more() -> None:
    statements = _node_statements()
    publish = statements["PublishDropCopy"]
    assert sorted(publish["Action"]) == ["kinesis:PutRecord", "kinesis:PutRecords"]
    arn = publish["Resource"]["Fn::Sub"]
    assert (
        arn == "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/${ExecutionsStreamName}"
    )
    encrypt = statements["EncryptDropCopy"]
    assert (encrypt["Action"], encrypt["Resource"]) == ("kms:GenerateDataKey", {"Ref": "TradingDataKeyArn"})
    assert _via(encrypt) == "kinesis"
    on_the_stream = [
        sid for sid, s in statements.items() if "${ExecutionsStreamName}" in str(s.get("Resource"))
    ]
    assert on_the_stream == ["PublishDropCopy"]


def test_every_node_starts_with_the_stream_and_its_number() -> None:
    user_data = (DEPLOY / "user-data.sh").read_text()
    assert "MERIDIAN_EXECUTIONS_STREAM=${ExecutionsStreamName}\n" in user_data
    # the stack's NodeNumber for shard 1, NodeNumber + n - 1 for shard n (tests/infra/test_infra_fleet.py)
    assert "NODE_NUMBER=$(( ${NodeNumber} + SHARD_INDEX - 1 ))" in user_data
    assert "MERIDIAN_NODE_NUMBER=$NODE_NUMBER\n" in user_data
    (exec_start,) = [
        line.split("=", 1)[1]
        for line in (DEPLOY / "meridian-node.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    ]
    words = shlex.split(exec_start)
    assert words[words.index("--executions-stream") + 1] == "$MERIDIAN_EXECUTIONS_STREAM"
    assert words[words.index("--node-number") + 1] == "$MERIDIAN_NODE_NUMBER"
    inlined = HOTPATH["Resources"]["NodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    assert f"\nExecStart={exec_start}\n" in inlined["Fn::Base64"]["Fn::Sub"]
