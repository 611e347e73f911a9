"""The functions Kinesis triggers read their own stream, and no other.

SAM attaches the AWS managed ``AWSLambdaKinesisExecutionRole`` (Kinesis reads on ``Resource: "*"``:
every stream in the account) to the generated role of any function with a ``Type: Kinesis`` event.
Meridian's stream readers are mapped by a plain ``AWS::Lambda::EventSourceMapping`` instead, and
their roles grant the mapping's reads on the mapped stream only. Checked after the SAM transform.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.templates import (
    ROOT_TEMPLATE,
    STREAM_ARNS,
    as_list,
    branches,
    policy_documents,
    properties,
    references,
    resources,
    transformed,
)

TEMPLATE = transformed(ROOT_TEMPLATE)
# What Lambda's mapping of a stream (no enhanced fan-out consumer) calls with the function's role.
MAPPING_READS = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
}
READERS = {"MarketDataFunction": "MarketDataStream", "ExecutionsFunction": "ExecutionsStream"}


def _stream_mappings() -> dict[str, dict[str, Any]]:
    """Function -> properties of its Kinesis mapping (a streaming stack stream or any ``:kinesis:`` ARN)."""
    streams = list(STREAM_ARNS.values())
    found = {}
    for mapping in resources(TEMPLATE, "AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        source = props["EventSourceArn"]
        if source in streams or ":kinesis:" in json.dumps(source):
            found[props["FunctionName"]["Ref"]] = props
    return found


def _role(function: str) -> str:
    role: str = properties(TEMPLATE, function)["Role"]["Fn::GetAtt"][0]
    return role


def _role_statements(role: str) -> list[dict[str, Any]]:
    """The role's inline policies and every AWS::IAM::Policy / ManagedPolicy attached to it."""
    attached = {
        name
        for name, res in resources(TEMPLATE).items()
        if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and ("Ref", role) in set(references(res["Properties"].get("Roles", [])))
    }
    return [
        s for d in policy_documents(TEMPLATE) if d.logical_id in {role, *attached} for s in d.statements()
    ]


def test_the_stream_readers_are_the_market_data_and_executions_functions() -> None:
    mappings = _stream_mappings()
    assert set(mappings) == set(READERS)
    for function, stream in READERS.items():
        assert mappings[function]["EventSourceArn"] == STREAM_ARNS[stream]


@pytest.mark.parametrize("function", sorted(READERS))
def test_no_stream_reader_role_carries_the_account_wide_kinesis_policy(function: str) -> None:
    role = properties(TEMPLATE, _role(function))
    managed = [arn for value in as_list(role.get("ManagedPolicyArns")) for arn in branches(value)]
    assert not [arn for arn in managed if "AWSLambdaKinesisExecutionRole" in json.dumps(arn)]
    # Everything else SAM gives a traced function in the VPC is still there.
    assert {json.dumps(arn).rsplit("/", 1)[-1].strip('"') for arn in managed} >= {
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
        "AWSXrayWriteOnlyAccess",
    }


@pytest.mark.parametrize("function", sorted(READERS))
def test_every_kinesis_statement_names_the_function_s_own_stream_only(function: str) -> None:
    stream = STREAM_ARNS[READERS[function]]
    kinesis = [
        s
        for s in _role_statements(_role(function))
        if any(str(a).lower().startswith("kinesis:") for a in as_list(s.get("Action")))
    ]
    assert kinesis, "the mapping reads the stream with the function's role"
    granted: set[str] = set()
    for statement in kinesis:
        assert statement["Effect"] == "Allow"
        assert as_list(statement["Resource"]) == [stream], statement.get("Sid")
        actions = set(as_list(statement["Action"]))
        assert actions <= MAPPING_READS, (statement.get("Sid"), actions - MAPPING_READS)
        granted |= actions
    assert granted == MAPPING_READS


@pytest.mark.parametrize("function", sorted(READERS))
def test_failed_batches_may_be_sent_to_the_mapping_s_dlq_only(function: str) -> None:
    destination = _stream_mappings()[function]["DestinationConfig"]["OnFailure"]["Destination"]
    sends = [
        s
        for s in _role_statements(_role(function))
        if any(str(a).lower().startswith("sqs:") for a in as_list(s.get("Action")))
    ]
    assert [(as_list(s["Action"]), s["Resource"]) for s in sends] == [(["sqs:SendMessage"], destination)]
