"""template.yaml: the symbol-move runbook (SymbolMoveStateMachine, SymbolMoveFunction) holds exactly
the permissions its steps use, on exactly the routing parameter, the Orders table and the two
session-key secrets; and its wait outlasts every order request that may read a record before it
is pointed."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.templates import (
    ROOT,
    ROOT_TEMPLATE,
    Template,
    as_list,
    load,
    policy_documents,
    properties,
    references,
    transformed,
)

ROUTES = "HotpathStack.Outputs.RoutesParameterName"
TRADING_KEY = "SecurityStack.Outputs.TradingDataKeyArn"
ORDERS_TABLE = "OrdersTable.Arn"


def _statements(template: Template, owner: str) -> list[dict[str, Any]]:
    props = properties(template, owner)
    role = (props.get("Role") or props["RoleArn"])["Fn::GetAtt"][0]
    return [s for d in policy_documents(template) if d.logical_id == role for s in d.statements()]


def _grants(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Action -> the resources it is granted on (their references; "*" as itself)."""
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement.get("Effect") == "Allow"
        targets = {
            target
            for resource in as_list(statement.get("Resource"))
            for target in ({"*"} if resource == "*" else {t for _, t in references(resource)})
            if not target.startswith("AWS::")  # the partition, region and account of an ARN
        }
        for action in as_list(statement["Action"]):
            granted.setdefault(str(action), set()).update(targets)
    return granted


def test_the_function_may_only_read_and_switch_the_routes_point_records_and_read_its_two_keys() -> None:
    template = transformed(ROOT_TEMPLATE)
    statements = _statements(template, "SymbolMoveFunction")
    granted = _grants(statements)
    assert granted == {
        "secretsmanager:GetSecretValue": {"MatchingAdminKeySecret", "MatchingOrdersKeySecret"},
        "kms:Decrypt": {TRADING_KEY},
        "ssm:GetParameter": {ROUTES},
        "ssm:PutParameter": {ROUTES},
        # OwnsTables, else the primary's replica by name (meridian-orders-${PeerEnvironment}).
        "dynamodb:UpdateItem": {ORDERS_TABLE, "PeerEnvironment"},
    }
    routes = next(s for s in statements if "ssm:PutParameter" in as_list(s["Action"]))
    assert ":parameter${Name}" in json.dumps(routes["Resource"])  # the parameter's ARN, not a prefix
    tables = [s for s in statements if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert all(":table/meridian-orders-${PeerEnvironment}" in json.dumps(s["Resource"]) for s in tables)
    decrypts = [s for s in statements if "kms:Decrypt" in as_list(s["Action"])]
    via = {json.dumps(s["Condition"]["StringEquals"]["kms:ViaService"]) for s in decrypts}
    assert via == {
        json.dumps({"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}),
        json.dumps({"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}),
    }


def test_the_function_reaches_the_nodes_with_both_keys_the_routes_and_the_orders_table() -> None:
    template = load(ROOT_TEMPLATE)
    function = properties(template, "SymbolMoveFunction")
    variables = function["Environment"]["Variables"]
    assert variables["MERIDIAN_HOTPATH_KEY_SECRET_ARN"] == {"Ref": "MatchingAdminKeySecret"}
    assert variables["MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN"] == {"Ref": "MatchingOrdersKeySecret"}
    assert variables["MERIDIAN_ROUTES_PARAMETER"] == {
        "Fn::GetAtt": ["HotpathStack", "Outputs.RoutesParameterName"]
    }
    assert (
        variables["ORDERS_TABLE"]
        == properties(template, "OrdersApiFunction")["Environment"]["Variables"]["ORDERS_TABLE"]
    )
    assert function["VpcConfig"] == properties(template, "ValidateIntegrityFunction")["VpcConfig"]
    assert function["Handler"] == "app.symbol_move_handler"


def test_the_state_machine_only_invokes_its_function_and_logs_to_its_encrypted_group() -> None:
    template = transformed(ROOT_TEMPLATE)
    granted = _grants(_statements(template, "SymbolMoveStateMachine"))
    invoke = {
        action: targets for action, targets in granted.items() if not action.startswith(("logs:", "xray:"))
    }
    assert invoke == {"lambda:InvokeFunction": {"SymbolMoveFunction"}}  # its ARN (and its versions')
    assert all(
        targets == {"*"} for action, targets in granted.items() if action.startswith(("logs:", "xray:"))
    )
    raw = load(ROOT_TEMPLATE)
    machine = properties(raw, "SymbolMoveStateMachine")
    assert machine["DefinitionUri"] == "statemachines/symbol-move.asl.json"
    assert machine["Tracing"] == {"Enabled": True}
    (destination,) = machine["Logging"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": ["SymbolMoveLogGroup", "Arn"]
    }
    group = properties(raw, "SymbolMoveLogGroup")
    assert group["KmsKeyId"] == properties(raw, "RunbooksLogGroup")["KmsKeyId"]
    assert "SymbolMoveStateMachineArn" in raw["Outputs"]


def test_the_wait_before_the_route_switch_outlasts_every_order_request() -> None:
    """A request that read an order record before it was pointed must end before the route switches
    (docs/runbooks/symbol-move.md): the wait is at least the Timeout of each function that reads a
    record and then sends the order's cancel or replace to the symbol's node."""
    template = load(ROOT_TEMPLATE)
    default = template["Globals"]["Function"]["Timeout"]
    timeouts = [
        properties(template, name).get("Timeout", default)
        for name in ("OrdersApiFunction", "RouteApprovedOrderFunction")
    ]
    definition = json.loads((ROOT / "statemachines/symbol-move.asl.json").read_text())
    wait = definition["States"]["LetInFlightRequestsFinish"]
    assert wait["Type"] == "Wait"
    assert wait["Seconds"] >= max(timeouts)
    assert wait["Next"] == "SwitchRoute"
    assert definition["States"]["PointRecords"]["Next"] == "LetInFlightRequestsFinish"
