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


def test_api_health_check_reads_the_api_server_error_alarm_not_an_unsigned_probe() -> None:
    # Every route needs a SigV4 signature; an HTTPS probe from Route 53 would only ever get 403.
    check = properties(DR, "ApiHealthCheck")["HealthCheckConfig"]
    assert check["Type"] == "CLOUDWATCH_METRIC"
    assert check["AlarmIdentifier"] == {
        "Name": {"Ref": "ApiHealthAlarmName"},
        "Region": {"Ref": "AWS::Region"},
    }
    assert all(check_["Type"] != "HTTPS" for check_ in _health_checks())
    combined = properties(DR, "RegionHealthCheck")["HealthCheckConfig"]
    assert combined["Type"] == "CALCULATED"
    assert combined["HealthThreshold"] == len(combined["ChildHealthChecks"]) == 2


def test_the_root_template_gives_the_dr_stack_the_api_alarm() -> None:
    root = load("template.yaml")
    assert properties(root, "DrStack")["Parameters"]["ApiHealthAlarmName"] == {
        "Ref": "OrdersApiServerErrorsAlarm"
    }
    alarm = properties(root, "OrdersApiServerErrorsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    api = properties(root, "OrdersApi")
    assert dimensions == {"ApiName": api["Name"], "Stage": api["StageName"]}
    assert alarm["TreatMissingData"] == "notBreaching"  # a quiet night is not an outage
    assert alarm["Statistic"] == "Average"
    assert 0 < alarm["Threshold"] < 1  # a share of requests


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
