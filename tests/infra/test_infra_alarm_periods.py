"""Every CloudWatch alarm evaluates periods its metric can fill, and the alarms that decide a
failover do not read missing data as an outage.

An alarm whose period is shorter than its metric's publishing period sees mostly empty periods; with
missing data treated as breaching it goes to ALARM on a healthy region (the hot-path alarm once did:
10 s periods on NLB HealthyHostCount, published once a minute, read by Route 53).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.templates import ROOT, ROOT_TEMPLATE, all_template_paths, load, resources

# Seconds between the datapoints each namespace publishes (or stores), with where that is written.
PUBLISHING_PERIOD_S = {
    # "Elastic Load Balancing measures and sends its metrics in 60-second intervals."
    "AWS/NetworkELB": 60,
    # API Gateway, SQS, Lambda, RDS: one-minute metrics (their CloudWatch metric pages).
    "AWS/ApiGateway": 60,
    "AWS/SQS": 60,
    "AWS/Lambda": 60,
    "AWS/RDS": 60,
    # Kinesis Data Streams: stream-level (basic) metrics are sent every minute.
    "AWS/Kinesis": 60,
    # Route 53 health-check metrics: one-minute, and only in us-east-1.
    "AWS/Route53": 60,
    # The nodes' CloudWatch bridge puts every 10 s at standard resolution (no StorageResolution),
    # which CloudWatch stores per minute (checked below).
    "Meridian/Hotpath": 60,
}


def _alarms() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in all_template_paths():
        for logical_id, alarm in resources(load(path), "AWS::CloudWatch::Alarm").items():
            yield path, logical_id, alarm["Properties"]


def _metric_periods(alarm: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(namespace, period) of each metric the alarm reads (a metric-math alarm reads several)."""
    if "Metrics" in alarm:
        for query in alarm["Metrics"]:
            if "MetricStat" in query:
                stat = query["MetricStat"]
                yield stat["Metric"]["Namespace"], stat["Period"]
        return
    yield alarm["Namespace"], alarm["Period"]


ALARMS = sorted((path, logical_id) for path, logical_id, _ in _alarms())


def test_every_template_alarm_is_checked() -> None:
    assert ("stacks/observability.yaml", "HotpathHealthyNodesAlarm") in ALARMS
    assert len(ALARMS) >= 10


@pytest.mark.parametrize(("path", "logical_id"), ALARMS)
def test_alarm_periods_are_whole_multiples_of_their_metrics_publishing_period(
    path: str, logical_id: str
) -> None:
    alarm = load(path)["Resources"][logical_id]["Properties"]
    for namespace, period in _metric_periods(alarm):
        assert namespace in PUBLISHING_PERIOD_S, f"{namespace}: add its publishing period (and source)"
        assert isinstance(period, int), f"{logical_id}: a literal period, so it can be checked"
        published = PUBLISHING_PERIOD_S[namespace]
        where = f"{path} {logical_id}: a {period} s period on {namespace}, published every {published} s"
        assert period >= published, where
        assert period % published == 0, where


def test_the_node_bridge_publishes_at_standard_resolution() -> None:
    bridge = (ROOT / "hotpath" / "deploy" / "cloudwatch_bridge.py").read_text()
    assert "StorageResolution" not in bridge


def _root_alarm_name_source(value: Any) -> tuple[str, str]:
    """(template, logical id) of the alarm a DrStack parameter names, through the root's wiring."""
    if set(value) == {"Ref"}:
        return ROOT_TEMPLATE, value["Ref"]
    stack, output = value["Fn::GetAtt"]
    location = load(ROOT_TEMPLATE)["Resources"][stack]["Properties"]["Location"]
    name = load(location)["Outputs"][output.removeprefix("Outputs.")]["Value"]
    return location, name["Ref"]


def _alarms_route53_reads() -> list[tuple[str, str]]:
    dr = load("stacks/dr.yaml")
    wired = load(ROOT_TEMPLATE)["Resources"]["DrStack"]["Properties"]["Parameters"]
    read = []
    for check in resources(dr, "AWS::Route53::HealthCheck").values():
        config = check["Properties"]["HealthCheckConfig"]
        if config["Type"] == "CLOUDWATCH_METRIC":
            parameter = config["AlarmIdentifier"]["Name"]["Ref"]
            read.append(_root_alarm_name_source(wired[parameter]))
    return read


def test_the_alarms_route53_reads_take_missing_data_as_no_outage() -> None:
    read = _alarms_route53_reads()
    assert ("stacks/observability.yaml", "HotpathHealthyNodesAlarm") in read
    assert ("stacks/observability.yaml", "OrdersApiServerErrorsAlarm") in read
    for path, logical_id in read:
        alarm = load(path)["Resources"][logical_id]["Properties"]
        assert alarm["TreatMissingData"] in ("notBreaching", "missing"), (path, logical_id)


def test_no_healthy_node_means_none_for_a_whole_published_minute() -> None:
    alarm = load("stacks/observability.yaml")["Resources"]["HotpathHealthyNodesAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/NetworkELB", "HealthyHostCount")
    # Maximum < 1 over the minute: no node healthy at any point of it, not one restart's blip.
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Maximum",
        "LessThanThreshold",
        1,
    )
    assert alarm["Period"] == 60
