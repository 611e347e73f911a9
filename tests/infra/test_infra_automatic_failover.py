"""The automatic failover is wired end to end, as samconfig.toml's prod and dr deploy once paired:
prod's health alarms -> prod's forwarding rule -> dr's default bus -> dr's rule -> the trigger state
machine -> the failover runbook; with the operators' switch, the unhealthy-for time and a lock."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.templates import ROOT
from tools.cfn_model import StackModel, environment_model

PROD, DR = environment_model("prod"), environment_model("dr")


def _pattern(stack: Any, rule: str) -> dict[str, Any]:
    pattern = stack.properties(rule)["EventPattern"]
    return pattern if isinstance(pattern, dict) else json.loads(pattern)


def _prod_alarm_names() -> set[str]:
    return {
        PROD.nested("ObservabilityStack").physical_name("OrdersApiServerErrorsAlarm"),
        PROD.nested("ObservabilityStack").physical_name("HotpathHealthyNodesAlarm"),
        PROD.nested("DrStack").physical_name("RegionHealthAlarm"),
    }


def test_prod_raises_an_alarm_on_the_health_check_route53_fails_over_on() -> None:
    dr_stack = PROD.nested("DrStack")
    alarm = dr_stack.properties("RegionHealthAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Route53", "HealthCheckStatus")
    assert alarm["Dimensions"] == [{"Name": "HealthCheckId", "Value": dr_stack.output("HealthCheckId")}]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "RegionHealthAlarm" not in DR.nested("DrStack").resources  # dr raises none (no peer to tell)


def test_prod_forwards_exactly_the_alarms_drs_rule_listens_to() -> None:
    forward = PROD.properties("HealthSignalForwardRule")
    (target,) = forward["Targets"]
    assert target["Arn"] == f"arn:aws:events:{DR.region}:123456789012:event-bus/default"
    assert "RoleArn" in target
    forwarded = set(_pattern(PROD, "HealthSignalForwardRule")["detail"]["alarmName"])
    assert forwarded == _prod_alarm_names()
    listened = _pattern(DR, "PrimaryHealthRule")
    assert set(listened["detail"]["alarmName"]) == _prod_alarm_names()
    assert listened["source"] == ["aws.cloudwatch"]
    assert listened["detail-type"] == ["CloudWatch Alarm State Change"]
    # OK as well as ALARM: a flap shorter than the unhealthy-for time is seen as one.
    assert sorted(listened["detail"]["state"]["value"]) == ["ALARM", "OK"]
    assert "HealthSignalForwardRule" not in DR.resources  # dr forwards nothing back


def test_drs_rule_starts_the_trigger_which_runs_the_failover_runbook() -> None:
    rule = DR.properties("PrimaryHealthRule")
    assert rule["State"] == "ENABLED"  # samconfig's dr: AutomaticFailover=enabled
    (target,) = rule["Targets"]
    assert target["Arn"] == DR.ref("DrAutomaticFailoverStateMachine")
    assert target["DeadLetterConfig"]["Arn"] == DR.get_att("EventDeliveryDeadLetterQueue", "Arn")
    trigger = DR.properties("DrAutomaticFailoverStateMachine")["DefinitionSubstitutions"]
    assert trigger["FailoverStateMachineArn"] == DR.ref("DrFailoverStateMachine")
    assert trigger["SwitchParameterName"] == "/meridian/dr/dr/automatic-failover"
    assert str(trigger["UnhealthyForSeconds"]) == "10"
    assert str(trigger["AcceptsDataLoss"]) == "true"


def test_the_switch_is_an_ssm_parameter_operators_can_flip() -> None:
    switch = DR.properties("AutomaticFailoverSwitch")
    assert switch["Value"] == "on"
    assert switch["AllowedPattern"] == "^(on|off)$"
    off = environment_model("dr").parameters | {"AutomaticFailover": "disabled"}
    disabled = StackModel("template.yaml", off, DR.region, DR.stack_name, "dr")
    assert disabled.properties("AutomaticFailoverSwitch")["Value"] == "off"
    assert disabled.properties("PrimaryHealthRule")["State"] == "DISABLED"


def test_the_trigger_waits_checks_locks_notifies_and_follows_the_runbook() -> None:
    definition = json.loads((ROOT / "statemachines" / "dr-auto-failover.asl.json").read_text())
    states = definition["States"]
    assert states["WaitWhileUnhealthy"]["SecondsPath"] == "$.policy.unhealthy_for_seconds"
    assert states["ReadSwitchAgain"]["Resource"].endswith("ssm:getParameter")
    lock = states["TakeTheLock"]["Parameters"]
    assert lock["ConditionExpression"] == "attribute_not_exists(#k)"
    assert states["NotifyStarting"]["Resource"] == "arn:aws:states:::sns:publish"
    assert "reason.$" in states["NotifyStarting"]["Parameters"]["Message"]
    start = states["StartFailover"]
    assert start["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert start["Parameters"]["Input"]["detected_at.$"] == "$.detection.first_failed_probe_at"
    # Manual start stays: the runbook is its own state machine with its own output.
    assert DR.output("DrFailoverStateMachineArn") == DR.ref("DrFailoverStateMachine")


def test_the_trigger_may_do_what_it_does_and_no_more() -> None:
    role = DR.properties("DrAutomaticFailoverStateMachineRole")
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    granted = {
        (action, resource)
        for s in statements
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert (
        "ssm:PutParameter",
        "arn:aws:ssm:us-west-2:123456789012:parameter/meridian/dr/dr/automatic-failover",
    ) in granted
    assert ("states:StartExecution", DR.ref("DrFailoverStateMachine")) in granted
    assert ("dynamodb:PutItem", DR.get_att("DrControlTable", "Arn")) in granted
    wildcard = {action for action, resource in granted if resource == "*"}
    assert all(action.startswith(("logs:", "xray:")) for action in wildcard), wildcard
