"""The sample events in events/ (for `sam local invoke`) are what the handlers accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from order_flow.models import FlowOrder

from meridian.events import parse_eventbridge_event
from meridian_local import lambda_adapter

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
    answer, errored = _run(
        "MeasureRecoveryTimeFunction",
        "runbook_tasks/measure_recovery_time.json",
        {"RTO_TARGET_SECONDS": "30"},
    )
    assert not errored
    assert (answer["seconds"], answer["within_target"]) == (17.745, True)


def test_a_handler_failure_keeps_its_error_name_for_the_state_machine() -> None:
    answer, errored = _run(
        "ValidateIntegrityFunction",
        "runbook_tasks/validate_integrity.json",
        {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert errored
    assert answer["errorType"] == "OperationalError"
