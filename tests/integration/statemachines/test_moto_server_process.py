"""`python -m meridian_local.endpoint.moto_server --port P`: a moto server process running the
template's handlers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from meridian_local.delivery import lambda_adapter
from meridian_local.endpoint.moto_server import READY_PREFIX

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def server() -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meridian_local.endpoint.moto_server",
            "--port",
            "0",
        ],  # its ready line names the port
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        assert line.startswith(READY_PREFIX), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(10)


def _client(service: str, endpoint: str) -> Any:
    make: Any = boto3.client
    return make(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_the_server_process_runs_template_handlers_and_executes_state_machines(server: str) -> None:
    client = _client("lambda", server)
    role = lambda_adapter.ensure_lambda_role(_client("iam", server))
    source = lambda_adapter.template_functions()["OrderRiskFunction"]
    lambda_adapter.create_functions(client, role, {"risk": (source, {"LARGE_ORDER_NOTIONAL": "1000000"})})
    sample = (REPO / "events" / "order_flow" / "risk.json").read_text()
    answer = client.invoke(FunctionName="risk", Payload=sample)
    assert json.loads(answer["Payload"].read())["notional"] == "1140000.00"

    sfn = _client("stepfunctions", server)
    definition = {
        "StartAt": "Risk",
        "States": {
            "Risk": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "risk", "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="risk", definition=json.dumps(definition), roleArn=role)[
        "stateMachineArn"
    ]
    smaller = json.loads(sample)
    smaller["order"]["quantity"] = 10
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(smaller))
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=execution["executionArn"]))[
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["notional"] == "1900.00"
