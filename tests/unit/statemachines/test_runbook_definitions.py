"""Every state machine definition parses, is wired completely by template.yaml, and is well formed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from meridian_local.delivery import lambda_adapter

REPO = Path(__file__).resolve().parents[3]
DEFINITIONS = sorted((REPO / "statemachines").glob("*.asl.json"))
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
NUMERIC = {
    "ApprovalTimeoutSeconds",
    "ApprovalHeartbeatSeconds",
    "PollSeconds",
    "MaxPolls",
    "RecordTtl",
    "BackupRetentionDays",
    "FirstOrderPolls",
    "UnhealthyForSeconds",
}
BOOLEAN = {"ManagesDns"}


def _template() -> dict[str, Any]:
    return lambda_adapter.read_template(REPO / "template.yaml")


def _state_machines() -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in _template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def _placeholder_value(key: str) -> str:
    if key in NUMERIC:
        return "5"
    if key in BOOLEAN:
        return "true"
    if key.endswith("Arn"):
        return f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
    return f"value-of-{key}"


def _substituted(text: str) -> str:
    return PLACEHOLDER.sub(lambda m: _placeholder_value(m.group(1)), text)


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, nested ones (Map iterators, Parallel branches) included."""
    for name, state in definition["States"].items():
        yield name, state
        for inner in [state.get("Iterator"), state.get("ItemProcessor"), *state.get("Branches", [])]:
            if inner:
                yield from _states(inner)


def test_there_is_a_definition_per_runbook() -> None:
    assert {p.name for p in DEFINITIONS} >= {
        "order-flow.asl.json",
        "compliance-report.asl.json",
        "dr-switchover.asl.json",
    }


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_the_definition_parses_as_json_and_as_the_states_language(path: Path) -> None:
    text = path.read_text()
    json.loads(text)
    AmazonStateLanguageParser.parse(_substituted(text))  # raises on anything Step Functions would refuse


def test_every_placeholder_is_supplied_by_every_state_machine_that_uses_the_definition() -> None:
    machines = _state_machines()
    used = {p.name for p in DEFINITIONS}
    wired = set()
    for logical_id, props in machines.items():
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str) or not uri.startswith("statemachines/"):
            continue
        wired.add(Path(uri).name)
        needed = set(PLACEHOLDER.findall((REPO / uri).read_text()))
        supplied = set(props.get("DefinitionSubstitutions", {}))
        assert needed <= supplied, f"{logical_id} misses {sorted(needed - supplied)}"
        assert supplied <= needed, f"{logical_id} supplies unused {sorted(supplied - needed)}"
    assert used <= wired, f"definitions no state machine uses: {sorted(used - wired)}"


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_every_transition_lands_on_a_state_and_every_state_is_reachable(path: Path) -> None:
    definition = json.loads(path.read_text())

    def check(machine: dict[str, Any]) -> None:
        states = machine["States"]
        targets: dict[str, set[str]] = {}
        for name, state in states.items():
            nexts = {state.get("Next"), state.get("Default")}
            nexts |= {c.get("Next") for c in state.get("Choices", [])}
            nexts |= {c.get("Next") for c in state.get("Catch", [])}
            targets[name] = {n for n in nexts if n}
            assert targets[name] <= set(states), f"{name} goes to an unknown state"
            if state["Type"] not in ("Choice", "Succeed", "Fail") and "Next" not in state:
                assert state.get("End") is True, f"{name} neither continues nor ends"
            for inner in [state.get("Iterator"), *state.get("Branches", [])]:
                if inner:
                    check(inner)
        seen, frontier = set(), [machine["StartAt"]]
        while frontier:
            name = frontier.pop()
            if name not in seen:
                seen.add(name)
                frontier += targets[name]
        assert seen == set(states), f"unreachable: {sorted(set(states) - seen)}"

    check(definition)


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_every_fail_state_names_its_error_and_cause(path: Path) -> None:
    for name, state in _states(json.loads(path.read_text())):
        if state["Type"] == "Fail":
            assert {"Error", "ErrorPath"} & set(state), name
            assert {"Cause", "CausePath"} & set(state), name


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_every_task_with_side_effects_has_a_catch(path: Path) -> None:
    for name, state in _states(json.loads(path.read_text())):
        if state["Type"] == "Task":
            assert state.get("Catch") or state.get("End"), f"{name} has no Catch"


def _sdk_parameters(path: Path) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for name, state in _states(json.loads(path.read_text())):
        resource = state.get("Resource", "")
        if state["Type"] == "Task" and resource.startswith("arn:aws:states:::aws-sdk:"):
            service, action = resource.split(":")[-2:]
            yield name, service, action.split(".")[0], state.get("Parameters", {})


def _unknown_members(parameters: dict[str, Any], shape: Any) -> list[str]:
    def norm(name: str) -> str:
        return name.replace("_", "").lower()

    members = {norm(member): sub for member, sub in shape.members.items()}
    unknown = []
    for key, value in parameters.items():
        member = members.get(norm(key.removesuffix(".$")))
        if member is None:
            unknown.append(key)
        elif isinstance(value, dict) and member.type_name == "structure":
            unknown += _unknown_members(value, member)
        elif (
            isinstance(value, list) and member.type_name == "list" and member.member.type_name == "structure"
        ):
            for item in value:
                unknown += _unknown_members(item, member.member)
    return unknown


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_sdk_integration_parameters_are_members_of_the_api(path: Path) -> None:
    session = botocore.session.get_session()
    boto_names = {"eventbridge": "events", "sfn": "stepfunctions"}  # Step Functions' names -> boto3's
    for name, service, action, parameters in _sdk_parameters(path):
        model = session.get_service_model(boto_names.get(service, service))
        operation = next(op for op in model.operation_names if op.lower() == action.lower())
        shape = model.operation_model(operation).input_shape
        assert not _unknown_members(parameters, shape), f"{name}: {service}.{operation}"
