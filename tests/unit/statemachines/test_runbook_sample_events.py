"""The sample events in events/ (for `sam local invoke`) are what the handlers accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from order_flow.models import FlowOrder

from meridian.events import parse_eventbridge_event
from meridian_local.delivery import lambda_adapter

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"


def _run(
    logical_id: str, sample: str, environment: dict[str, str] | None = None
) -> tuple[dict[str, object], bool]:
    source = lambda_adapter.template_functions()[logical_id]
    handler = lambda_adapter.HandlerRegistry().handler(f"sample-{logical_id}", source)
    context = lambda_adapter.LambdaContext(logical_id, 128, "arn:aws:lambda:local", 3)
    payload, errored, _ = lambda_adapter.run_handler(
        handler, (EVENTS / sample).read_text(), environment or {}, context
    )
    return json.loads(payload), errored


@pytest.mark.parametrize("path", sorted(EVENTS.glob("order_flow/*.json")), ids=lambda p: p.name)
def test_order_flow_samples_hold_a_valid_order_or_the_held_order_event(path: Path) -> None:
    sample = json.loads(path.read_text())
    if "order" in sample:
        FlowOrder.model_validate(sample["order"])
    event = sample.get("input", sample)
    if "detail-type" in event:
        assert parse_eventbridge_event(event).detail_type == "order.pending_approval.v1"


def test_the_risk_handler_answers_its_sample() -> None:
    answer, errored = _run("OrderRiskFunction", "order_flow/risk.json", {"LARGE_ORDER_NOTIONAL": "1000000"})
    assert not errored
    assert answer["allowed"] is True
    assert answer["notional"] == "1140000.00"


def test_the_recovery_time_handler_answers_its_sample() -> None:
    sample = json.loads((EVENTS / "runbook_tasks/measure_recovery_time.json").read_text())
    arn = sample["execution_arn"]
    with mock_aws():  # the execution whose history the handler reads
        sfn = boto3.client("stepfunctions", region_name="us-west-2")
        machine = sfn.create_state_machine(
            name=arn.split(":")[-2],
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/sample",
        )["stateMachineArn"]
        sfn.start_execution(stateMachineArn=machine, name=arn.split(":")[-1])
        answer, errored = _run(
            "MeasureRecoveryTimeFunction",
            "runbook_tasks/measure_recovery_time.json",
            {"RTO_TARGET_SECONDS": "30", "AWS_DEFAULT_REGION": "us-west-2", "MERIDIAN_ENVIRONMENT": "dr"},
        )
    assert not errored, answer
    # From the first failed probe (09:40:52.000) to the first order accepted (09:41:20.412).
    assert (answer["seconds"], answer["within_target"]) == (28.412, True)
    assert answer["halt_to_resume_seconds"] == 17.745
    measured: list[dict[str, Any]] = answer["steps"]  # type: ignore[assignment]
    assert [s["step"] for s in measured][:3] == [
        "detection",
        "trigger (unhealthy-for wait, guards)",
        "runbook start",
    ]
    assert round(sum(s["seconds"] for s in measured), 3) == 28.412
    datums: list[dict[str, Any]] = answer["metric_data"]  # type: ignore[assignment]
    names = {d["MetricName"] for d in datums}
    assert names == {"RecoveryTimeSeconds", "HaltToResumeSeconds", "RecoveryStepSeconds"}


def test_a_handler_failure_keeps_its_error_name_for_the_state_machine() -> None:
    answer, errored = _run(
        "ValidateIntegrityFunction",
        "runbook_tasks/validate_integrity.json",
        {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert errored
    assert answer["errorType"] == "OperationalError"
