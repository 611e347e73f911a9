"""`python -m meridian_local.moto_server --port P`: a moto server process running the template's handlers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from meridian_local import lambda_adapter
from meridian_local.moto_server import READY_PREFIX

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "meridian_local.moto_server", "--port", "0"],  # its ready line names the port
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
    source = lambda_adapter.template_functions()["MeasureRecoveryTimeFunction"]
    lambda_adapter.create_functions(client, role, {"rto": (source, {"RTO_TARGET_SECONDS": "30"})})
    answer = client.invoke(
        FunctionName="rto",
        Payload=json.dumps({"halted_at": "2026-11-25T12:00:00Z", "resumed_at": "2026-11-25T12:00:02Z"}),
    )
    assert json.loads(answer["Payload"].read())["seconds"] == 2.0

    sfn = _client("stepfunctions", server)
    definition = {
        "StartAt": "Measure",
        "States": {
            "Measure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "rto", "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="rto", definition=json.dumps(definition), roleArn=role)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(
        stateMachineArn=arn,
        input=json.dumps({"halted_at": "2026-11-25T12:00:00Z", "resumed_at": "2026-11-25T12:00:05Z"}),
    )
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=execution["executionArn"]))[
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["seconds"] == 5.0
