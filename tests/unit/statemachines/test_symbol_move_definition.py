"""statemachines/symbol-move.asl.json: the steps in their crash-safe order, transient errors retried
with backoff, and every failure ending the execution with the symbol halted on both shards, never
resumed; input it refuses touches nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from runbook_tasks import symbol_moves

from meridian import symbol_move

REPO = Path(__file__).resolve().parents[3]


def _runbook_app() -> ModuleType:
    """functions/runbook_tasks/app.py (every function has an ``app`` module: loaded by its path)."""
    spec = importlib.util.spec_from_file_location(
        "runbook_tasks_app", REPO / "functions/runbook_tasks/app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STEP_HANDLERS = set(_runbook_app().SYMBOL_MOVE_STEPS)
DEFINITION: dict[str, Any] = json.loads((REPO / "statemachines/symbol-move.asl.json").read_text())
STATES: dict[str, dict[str, Any]] = DEFINITION["States"]
STEPS = ["HaltSource", "Copy", "Remove", "PointRecords", "SwitchRoute", "Verify", "ResumeDestination"]
TRANSIENT = {"HotpathUnavailable", "HotpathTimeoutError", "HotpathConnectionLostError"}
LAMBDA = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.TooManyRequestsException"}


def _successors(name: str) -> set[str]:
    state = STATES[name]
    found = {state.get("Next"), state.get("Default")} | {c.get("Next") for c in state.get("Catch", [])}
    return {n for n in found if n}


def _reachable(start: str) -> set[str]:
    seen, frontier = set(), [start]
    while frontier:
        name = frontier.pop()
        if name not in seen:
            seen.add(name)
            frontier += _successors(name)
    return seen


def test_the_steps_run_in_the_crash_safe_order_with_the_wait_before_the_route_switch() -> None:
    path, name = [], DEFINITION["StartAt"]
    while "Next" in STATES[name]:
        path.append(name)
        name = STATES[name]["Next"]
    path.append(name)
    assert path == [
        "Begin",
        "HaltSource",
        "Copy",
        "Remove",
        "PointRecords",
        "LetInFlightRequestsFinish",
        "SwitchRoute",
        "Verify",
        "ResumeDestination",
        "Moved",
    ]
    assert STATES["Moved"].get("End") is True


@pytest.mark.parametrize("name", STEPS)
def test_each_step_calls_its_handler_with_the_executions_input(name: str) -> None:
    state = STATES[name]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke"
    assert state["Parameters"]["FunctionName"] == "${SymbolMoveFunctionArn}"
    payload = state["Parameters"]["Payload"]
    assert payload["step"] in STEP_HANDLERS
    assert payload["move.$"] == "$.input"
    assert state["ResultPath"].startswith("$.")
    assert state["ResultPath"] != "$.input"


def test_verify_is_given_the_copy_removal_and_pointing_reports() -> None:
    payload = STATES["Verify"]["Parameters"]["Payload"]
    assert {k: payload[k] for k in ("copy.$", "remove.$", "point.$")} == {
        "copy.$": STATES["Copy"]["ResultPath"],
        "remove.$": STATES["Remove"]["ResultPath"],
        "point.$": STATES["PointRecords"]["ResultPath"],
    }
    # What the copy step reports is what the verify step's model takes, field for field.
    selected = {k.removesuffix(".$") for k in STATES["Copy"]["ResultSelector"]}
    assert selected == set(symbol_moves.CopyResult.model_fields)
    for step, model in (("Remove", "RemoveResult"), ("PointRecords", "PointResult")):
        fields = set(getattr(symbol_moves, model).model_fields)
        assert {k.removesuffix(".$") for k in STATES[step]["ResultSelector"]} == fields


@pytest.mark.parametrize("name", [*STEPS, "KeepHalted"])
def test_transient_errors_are_retried_with_backoff(name: str) -> None:
    retried: set[str] = set()
    for rule in STATES[name]["Retry"]:
        assert rule["BackoffRate"] >= 2, rule
        assert rule["MaxAttempts"] >= 3, rule
        retried |= set(rule["ErrorEquals"])
    assert retried >= LAMBDA
    if name != "KeepHalted":
        assert retried >= TRANSIENT
    # Never retried: a refusal or a failed check would fail the same way again.
    assert not retried & {"States.ALL", "SymbolMoveError", "MoveInputError", "MoveVerificationError"}


@pytest.mark.parametrize("name", STEPS)
def test_every_failure_keeps_the_symbol_halted_and_fails_the_execution(name: str) -> None:
    catch_all = STATES[name]["Catch"][-1]
    assert catch_all["ErrorEquals"] == ["States.ALL"]
    assert catch_all["ResultPath"] == "$.failure"
    failed = STATES[catch_all["Next"]]
    assert failed["Result"] == name  # the cause names the step that failed
    assert failed["Next"] == "KeepHalted"
    assert STATES["KeepHalted"]["Parameters"]["Payload"]["step"] == "keep_halted"
    after = _reachable("KeepHalted")
    assert after == {"KeepHalted", "Stopped", "MoveFailed"}  # no resume on the way out
    assert STATES["MoveFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.outcome.error",
        "CausePath": "$.outcome.cause",
    }
    cause = STATES["Stopped"]["Parameters"]["cause.$"]
    assert "halted on both shards" in cause
    assert "docs/runbooks/symbol-move.md" in cause
    # Even if halting fails, the execution fails with the original error.
    assert STATES["KeepHalted"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.halted", "Next": "Stopped"}
    ]


def test_refused_input_fails_at_once_without_halting_anything() -> None:
    refusal = STATES["HaltSource"]["Catch"][0]
    assert set(refusal["ErrorEquals"]) == {"MoveInputError", "UnknownSymbolError", "MoveConfigError"}
    assert _reachable(refusal["Next"]) == {"Refused", "MoveFailed"}
    assert "nothing was halted" in STATES["Refused"]["Parameters"]["cause.$"]
    # The refusals are the classes the handler raises.
    for error in refusal["ErrorEquals"]:
        assert issubclass(getattr(symbol_moves, error), Exception)


def test_no_state_resumes_the_source() -> None:
    resuming = [
        name
        for name, state in STATES.items()
        if state["Type"] == "Task" and "resume" in state["Parameters"]["Payload"]["step"]
    ]
    assert resuming == ["ResumeDestination"]


def test_only_the_records_step_retries_a_record_behind_its_copy() -> None:
    """An answer's write may still be on its way to the record; no other step can meet one."""
    retrying = {
        name
        for name, state in STATES.items()
        for rule in state.get("Retry", [])
        if "RecordBehindError" in rule["ErrorEquals"]
    }
    assert retrying == {"PointRecords"}
    assert issubclass(symbol_move.RecordBehindError, symbol_move.SymbolMoveError)
