"""stacks/dr.yaml: Route 53 health checks and failover records (automated failover, <30 s RTO)."""

from __future__ import annotations

from tests.infra.templates import load, properties, resource

DR = load("stacks/dr.yaml")


def test_hot_path_health_check_reads_the_nlb_alarm() -> None:
    check = properties(DR, "HotpathHealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "CLOUDWATCH_METRIC"
    assert check["AlarmIdentifier"] == {
        "Name": {"Ref": "HotpathHealthAlarmName"},
        "Region": {"Ref": "AWS::Region"},
    }


def test_api_health_check_is_fast_enough_for_the_recovery_objective() -> None:
    check = properties(DR, "ApiHealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "HTTPS"
    assert check["RequestInterval"] * check["FailureThreshold"] <= 30
    combined = properties(DR, "RegionHealthCheck")["HealthCheckConfig"]
    assert combined["Type"] == "CALCULATED"
    assert combined["HealthThreshold"] == len(combined["ChildHealthChecks"]) == 2


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
