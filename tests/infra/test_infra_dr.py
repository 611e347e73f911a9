"""stacks/dr.yaml: Route 53 health checks and failover records (automated failover, <30 s RTO)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from tests.infra.templates import ROOT, load, properties, resource

DR = load("stacks/dr.yaml")


def test_hot_path_health_check_reads_the_nlb_alarm() -> None:
    check = properties(DR, "HotpathHealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "CLOUDWATCH_METRIC"
    assert check["AlarmIdentifier"] == {
        "Name": {"Ref": "HotpathHealthAlarmName"},
        "Region": {"Ref": "AWS::Region"},
    }


def test_api_health_check_reads_the_api_server_error_alarm() -> None:
    # Every product route needs a SigV4 signature; an HTTPS probe of them would only ever get 403.
    check = properties(DR, "ApiHealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "CLOUDWATCH_METRIC"
    assert check["AlarmIdentifier"] == {
        "Name": {"Ref": "ApiHealthAlarmName"},
        "Region": {"Ref": "AWS::Region"},
    }
    assert resource(DR, "ApiHealthCheck")["Condition"] == "ChecksApi"


def test_the_only_https_check_probes_the_unauthenticated_ping() -> None:
    """A fully-down API Gateway emits no 5xx metrics: the ping probe is what notices it."""
    assert [c["Type"] for c in _health_checks()].count("HTTPS") == 1
    ping = resource(DR, "ApiPingHealthCheck")
    assert ping["Condition"] == "ChecksPing"
    assert DR["Conditions"]["ChecksPing"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiPingFqdn"}, ""]}]}
    assert DR["Parameters"]["ApiPingFqdn"]["Default"] == ""  # not created unless configured
    assert ping["Properties"]["HealthCheckConfig"] == {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": {"Ref": "ApiPingFqdn"},
        "ResourcePath": {"Ref": "ApiPingPath"},
        "Port": 443,
        "EnableSNI": True,
        "RequestInterval": 10,
        "FailureThreshold": 2,
    }


def test_the_ping_path_is_the_gateway_definitions_ping_on_the_root_apis_stage() -> None:
    """The execute-api host carries the stage in the path: /<stage>/ping."""
    definition = json.loads((ROOT / "docs" / "api" / "apigateway.json").read_text())
    ping_operation = definition["paths"]["/ping"]["get"]
    assert ping_operation["security"] == []
    assert ping_operation["x-amazon-apigateway-integration"]["type"] == "mock"
    stage = properties(load("template.yaml"), "OrdersApi")["StageName"]
    assert DR["Parameters"]["ApiPingPath"]["Default"] == f"/{stage}/ping"
    assert re.fullmatch(DR["Parameters"]["ApiPingPath"]["AllowedPattern"], f"/{stage}/ping")
    assert re.fullmatch(DR["Parameters"]["ApiPingPath"]["AllowedPattern"], "/ping")


def test_the_region_check_needs_every_child_that_exists() -> None:
    region = resource(DR, "RegionHealthCheck")
    assert region["Condition"] == "CombinesChecks"
    assert DR["Conditions"]["CombinesChecks"] == {
        "Fn::Or": [{"Condition": "ChecksApi"}, {"Condition": "ChecksPing"}]
    }
    combined = region["Properties"]["HealthCheckConfig"]
    assert combined["Type"] == "CALCULATED"
    for api_alarm, ping in itertools.product((True, False), repeat=2):
        if not (api_alarm or ping):
            continue  # no region check: the record uses the hot-path check alone
        chosen = {"ChecksApi": api_alarm, "ChecksPing": ping, "ChecksApiAndPing": api_alarm and ping}
        children = [c for c in (_pick(child, chosen) for child in combined["ChildHealthChecks"]) if c]
        expected = [n for n, on in (("ApiHealthCheck", api_alarm), ("ApiPingHealthCheck", ping)) if on]
        assert children == [{"Ref": n} for n in [*expected, "HotpathHealthCheck"]], chosen
        assert _pick(combined["HealthThreshold"], chosen) == len(children), chosen
    assert DR["Conditions"]["ChecksApiAndPing"] == {
        "Fn::And": [{"Condition": "ChecksApi"}, {"Condition": "ChecksPing"}]
    }
    decided_by = {"Fn::If": ["CombinesChecks", {"Ref": "RegionHealthCheck"}, {"Ref": "HotpathHealthCheck"}]}
    assert resource(DR, "FailoverRecord")["Properties"]["HealthCheckId"] == decided_by
    assert DR["Outputs"]["HealthCheckId"]["Value"] == decided_by


def _pick(value: Any, conditions: dict[str, bool]) -> Any:
    """``value`` with its ``Fn::If`` decided by ``conditions``; None for ``AWS::NoValue``."""
    if isinstance(value, dict) and "Fn::If" in value:
        name, if_true, if_false = value["Fn::If"]
        return _pick(if_true if conditions[name] else if_false, conditions)
    return None if value == {"Ref": "AWS::NoValue"} else value


def test_the_root_template_gives_the_dr_stack_the_api_alarm_and_ping_host() -> None:
    root = load("template.yaml")
    observability = load("stacks/observability.yaml")
    assert properties(root, "DrStack")["Parameters"]["ApiHealthAlarmName"] == {
        "Fn::GetAtt": ["ObservabilityStack", "Outputs.ApiHealthAlarmName"]
    }
    assert observability["Outputs"]["ApiHealthAlarmName"]["Value"] == {"Ref": "OrdersApiServerErrorsAlarm"}
    assert properties(root, "DrStack")["Parameters"]["ApiPingFqdn"] == {"Ref": "ApiPingFqdn"}
    assert root["Parameters"]["ApiPingFqdn"]["Default"] == ""
    alarm = properties(observability, "OrdersApiServerErrorsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    api = properties(root, "OrdersApi")
    assert dimensions == {"ApiName": api["Name"], "Stage": api["StageName"]}
    assert alarm["TreatMissingData"] == "notBreaching"  # a quiet night is not an outage
    # A count of errors, not a share of requests: Route 53's steady 200s on GET /ping would dilute a share.
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] >= 1


def _health_checks() -> list[dict[str, object]]:
    return [
        r["Properties"]["HealthCheckConfig"]
        for r in DR["Resources"].values()
        if r["Type"] == "AWS::Route53::HealthCheck"
    ]


def test_failover_record_on_the_hosted_zone_parameter() -> None:
    record = resource(DR, "FailoverRecord")
    assert record["Condition"] == "CreatesFailoverRecord"
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "HostedZoneId"}, ""]}]} in DR["Conditions"][
        "CreatesFailoverRecord"
    ]["Fn::And"]
    props = record["Properties"]
    assert props["HostedZoneId"] == {"Ref": "HostedZoneId"}
    assert props["Failover"] == {"Ref": "FailoverRole"}
    assert DR["Parameters"]["FailoverRole"]["AllowedValues"] == ["PRIMARY", "SECONDARY"]
    assert props["HealthCheckId"]
    assert DR["Parameters"]["RecordTtl"]["Default"] <= 10


def test_outputs_the_runbook_needs() -> None:
    assert {"HealthCheckId", "RecordName", "RecordSetIdentifier", "FailoverRole", "SecondaryRegion"} <= set(
        DR["Outputs"]
    )
