"""Who may put what on the trading bus (finding: trade events could be forged).

Every role allowed events:PutEvents on the trading bus is conditioned to its own sources and
detail-types (identity policy), the bus policy denies trades and the executions source to every
other principal of the account, and the ledger's rule takes trade.executed.v1 from the executions
function's source only. Checked on the transformed templates as each environment deploys them, by
evaluating PutEvents requests against the rendered policies.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from meridian import events
from tests.infra.templates import ROOT, as_list
from tools.cfn_model import StackModel, environment_model, environments

EXECUTIONS = ("meridian.executions", "trade.executed.v1")


def _role_statements(root: StackModel) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> every statement of its inline and attached (same-template) policies."""
    managed = {
        root.ref(lid): root.properties(lid)["PolicyDocument"]
        for lid in root.of_type("AWS::IAM::ManagedPolicy")
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for lid in root.of_type("AWS::IAM::Role"):
        props = root.properties(lid)
        documents = [p["PolicyDocument"] for p in as_list(props.get("Policies"))]
        documents += [managed[arn] for arn in as_list(props.get("ManagedPolicyArns")) if arn in managed]
        found[lid] = [s for d in documents for s in as_list(d["Statement"])]
    return found


def _condition_holds(condition: dict[str, Any], source: str, detail_type: str, principal: str = "") -> bool:
    context: dict[str, list[str]] = {
        "events:source": [source],
        "events:detail-type": [detail_type],
        "aws:PrincipalArn": [principal],
    }
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values, expected = context[key], [str(v) for v in as_list(wanted)]
            if operator == "Null":
                holds = (not values) == (str(wanted).lower() == "true")
            elif operator == "ForAllValues:StringEquals":
                holds = all(v in expected for v in values)
            elif operator == "ForAnyValue:StringEquals":
                holds = any(v in expected for v in values)
            elif operator == "StringEquals":
                holds = values[0] in expected
            elif operator == "ArnNotEquals":
                holds = values[0] not in expected
            else:
                raise AssertionError(f"evaluator does not know {operator}")
            if not holds:
                return False
    return True


def _may_put(statements: list[dict[str, Any]], bus_arn: str, source: str, detail_type: str) -> bool:
    for s in statements:
        if s["Effect"] != "Allow":
            continue
        if not any(fnmatchcase("events:PutEvents", a) for a in as_list(s["Action"])):
            continue
        if not any(fnmatchcase(bus_arn, r) for r in as_list(s["Resource"])):
            continue
        if _condition_holds(s.get("Condition", {}), source, detail_type):
            return True
    return False


def _published_by_state_machine(path: str) -> set[tuple[str, str]]:
    text = (ROOT / path).read_text()
    return set(re.findall(r'"Source": "([^"]+)",\s*"DetailType": "([^"]+)"', text))


# What each publisher's code puts on the bus: (source, detail-type) pairs.
ORDER_API_TYPES = {
    cls.detail_type
    for cls in (
        events.OrderAccepted,
        events.OrderRejected,
        events.OrderCancelled,
        events.OrderReplaced,
        events.OrderPendingApproval,
        events.TradingHalted,
    )
}
PUBLISHERS: dict[str, set[tuple[str, str]]] = {
    "OrdersApiFunctionRole": {(events.EVENT_SOURCE, t) for t in ORDER_API_TYPES},
    "ExecutionsFunctionRole": {EXECUTIONS},
    # The route step's entries (order_flow.routing) and the definition's own PutEvents states.
    "OrderFlowStateMachineRole": _published_by_state_machine("statemachines/order-flow.asl.json")
    | {(events.EVENT_SOURCE, t) for t in ("order.accepted.v1", "order.cancelled.v1")},
    "ComplianceReportStateMachineRole": _published_by_state_machine(
        "statemachines/compliance-report.asl.json"
    ),
}
DR_RUNBOOK = _published_by_state_machine("statemachines/dr-switchover.asl.json")
EVERY_PAIR = (
    {pair for pairs in PUBLISHERS.values() for pair in pairs}
    | DR_RUNBOOK
    | {
        ("meridian.trading", "trade.executed.v1"),
        ("meridian.executions", "order.accepted.v1"),
        ("meridian.evil", "trade.executed.v1"),
    }
)


@pytest.fixture(scope="module", params=sorted(environments()))
def root(request: pytest.FixtureRequest) -> StackModel:
    return environment_model(str(request.param))


def test_each_publisher_may_put_exactly_its_own_sources_and_types(root: StackModel) -> None:
    bus = root.get_att("TradingEventBus", "Arn")
    statements = _role_statements(root)
    expected = dict(PUBLISHERS)
    for role in statements:
        if role.startswith("DrF") and role.endswith("StateMachineRole"):
            expected[role] = DR_RUNBOOK
    assert {r for r in expected if r.startswith("DrF")}, "a DR runbook role in every environment"
    for role, role_statements in statements.items():
        allowed = {pair for pair in EVERY_PAIR if _may_put(role_statements, bus, *pair)}
        assert allowed == expected.get(role, set()), role


def test_every_put_events_grant_names_its_sources_and_types(root: StackModel) -> None:
    for role, role_statements in _role_statements(root).items():
        for s in role_statements:
            if s["Effect"] == "Allow" and any(
                fnmatchcase("events:PutEvents", a) for a in as_list(s["Action"])
            ):
                condition = json.dumps(s.get("Condition", {}))
                assert "events:source" in condition, role
                assert "events:detail-type" in condition, role


def test_the_bus_policy_denies_trades_to_everyone_but_the_executions_function(root: StackModel) -> None:
    executions = root.get_att("ExecutionsFunctionRole", "Arn")
    admin = "arn:aws:iam::123456789012:role/Admin"
    denies = [
        root.properties(lid)["Statement"]
        for lid in root.of_type("AWS::Events::EventBusPolicy")
        if root.properties(lid)["Statement"]["Effect"] == "Deny"
    ]

    def denied(principal: str, source: str, detail_type: str) -> bool:
        return any(_condition_holds(d["Condition"], source, detail_type, principal) for d in denies)

    assert denied(admin, "meridian.trading", "trade.executed.v1")
    assert denied(admin, "meridian.executions", "trade.executed.v1")
    assert denied(admin, "meridian.executions", "order.accepted.v1")
    assert not denied(admin, "meridian.trading", "order.accepted.v1")
    assert not denied(executions, *EXECUTIONS)


def _matches(pattern: dict[str, Any], source: str, detail_type: str) -> bool:
    def one(values: list[Any], actual: str) -> bool:
        return any((isinstance(v, dict) and actual.startswith(v["prefix"])) or v == actual for v in values)

    return one(pattern["source"], source) and one(pattern["detail-type"], detail_type)


def test_the_ledger_takes_trades_from_the_executions_source_only(root: StackModel) -> None:
    ledger = root.properties("LedgerTradesRule")["EventPattern"]
    assert _matches(ledger, *EXECUTIONS)
    assert not _matches(ledger, "meridian.trading", "trade.executed.v1")
    assert not _matches(ledger, "meridian.runbooks", "trade.executed.v1")
    # Surveillance and the replay archive still see the trades.
    assert _matches(root.properties("SurveillanceEventsRule")["EventPattern"], *EXECUTIONS)
    assert "meridian.executions" in root.properties("TradingEventArchive")["EventPattern"]["source"]
