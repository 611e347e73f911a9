"""stacks/observability.yaml, stacks/monitoring.yaml and observability/: Prometheus, Grafana,
CloudWatch (<1 ms alarms), X-Ray."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.templates import ROOT, ROOT_TEMPLATE, load, load_yaml, properties, resource, resources

OBSERVABILITY = load("stacks/observability.yaml")
MONITORING = load("stacks/monitoring.yaml")
DASHBOARD = json.loads((ROOT / "observability/grafana/meridian-dashboard.json").read_text())
PROMETHEUS = load_yaml("observability/prometheus/prometheus.yml")


def _expressions() -> list[str]:
    """The PromQL of the Prometheus panels."""
    return [
        target["expr"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _cloudwatch_targets() -> dict[str, list[dict[str, Any]]]:
    """Panel title -> its CloudWatch queries."""
    return {
        panel["title"]: panel["targets"]
        for panel in DASHBOARD["panels"]
        if panel.get("datasource", {}).get("type") == "cloudwatch"
    }


def test_grafana_and_cloudwatch_show_the_api_its_routes_rejects_and_dead_letters() -> None:
    panels = _cloudwatch_targets()
    gateway = next(t for title, t in panels.items() if "API Gateway" in title)
    assert {(q["namespace"], q["metricName"]) for q in gateway} == {
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "IntegrationLatency"),
    }
    searches = " ".join(q.get("expression", "") for targets in panels.values() for q in targets)
    assert 'MetricName="ApiLatency"' in searches
    assert "{Meridian,route,service}" in searches
    assert 'MetricName="Rejects"' in searches
    assert "{Meridian,reason,service}" in searches
    assert "ApproximateNumberOfMessagesVisible" in searches
    sources = load_yaml("observability/grafana/provisioning/datasources.yaml")["datasources"]
    assert {s["uid"]: s["type"] for s in sources} == {
        "meridian-prometheus": "prometheus",
        "meridian-cloudwatch": "cloudwatch",
    }
    body = properties(OBSERVABILITY, "OperationsDashboard")["DashboardBody"]["Fn::Sub"][0]
    for needed in (
        '"IntegrationLatency"',
        'MetricName=\\"ApiLatency\\"',
        'MetricName=\\"Rejects\\"',
        "ApproximateNumberOfMessagesVisible",
    ):
        assert needed in body, needed


def _container(task: str) -> dict[str, Any]:
    (container,) = properties(MONITORING, task)["ContainerDefinitions"]
    found: dict[str, Any] = container
    return found


def _environment(task: str) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _container(task)["Environment"]}


def test_sub_millisecond_p99_latency_alarm() -> None:
    alarm = properties(OBSERVABILITY, "OrderLatencyP99Alarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Meridian/Hotpath", "OrderLatencyP99")
    assert alarm["Unit"] == "Microseconds"
    assert alarm["Threshold"] == {"Ref": "LatencyThresholdMicroseconds"}
    assert OBSERVABILITY["Parameters"]["LatencyThresholdMicroseconds"]["Default"] == 1000  # 1 ms
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"]


def _dead_letter_alarms() -> dict[str, dict[str, Any]]:
    return {
        name: alarm
        for name, alarm in resources(OBSERVABILITY).items()
        if name.startswith("DeadLetterQueueAlarm")
    }


def test_an_alarm_for_every_dead_letter_queue_named_by_the_root() -> None:
    assert OBSERVABILITY["Parameters"]["DeadLetterQueueNames"]["Type"] == "CommaDelimitedList"
    alarms = _dead_letter_alarms()
    root_queues = load(ROOT_TEMPLATE)["Resources"]["ObservabilityStack"]["Properties"]["Parameters"][
        "DeadLetterQueueNames"
    ]["Fn::Join"][1]
    assert len(alarms) >= len(root_queues), "one alarm slot per dead-letter queue the root passes"
    for index, (name, alarm) in enumerate(sorted(alarms.items(), key=lambda item: int(item[0][20:]))):
        condition = OBSERVABILITY["Conditions"][alarm["Condition"]]
        props = alarm["Properties"]
        (dimension,) = props["Dimensions"]
        selected = dimension["Value"]["Fn::Select"]
        assert selected[0] == index, name
        assert condition == {"Fn::Not": [{"Fn::Equals": [dimension["Value"], ""]}]}
        assert "DeadLetterQueueNames" in str(selected[1])
        assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_dead_letter_slots_resolve_to_the_queue_names_in_order() -> None:
    """Evaluate the padded Join/Split/Select the slots use, for an empty and a partial list."""

    def slot(index: int, names: list[str]) -> str:
        join = ",".join(names)
        padding = _dead_letter_alarms()["DeadLetterQueueAlarm1"]["Properties"]["Dimensions"][0]["Value"]
        pad = str(padding["Fn::Select"][1]["Fn::Split"][1]["Fn::Join"][1][1])
        return (join + pad).split(",")[index]

    slots = len(_dead_letter_alarms())
    assert [slot(i, []) for i in range(slots)] == [""] * slots
    names = ["orders-dlq", "ledger-dlq", "market-data-dlq"]
    assert [slot(i, names) for i in range(slots)] == [*names] + [""] * (slots - len(names))


def test_alert_topic_from_a_parameter_or_an_encrypted_one_of_our_own() -> None:
    assert OBSERVABILITY["Parameters"]["AlertTopicArn"]["Default"] == ""
    topic = resource(OBSERVABILITY, "AlertTopic")
    assert topic["Condition"] == "CreatesAlertTopic"
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "LogsKeyArn"}


def test_cloudwatch_dashboard_shows_latency_against_the_objective() -> None:
    body = properties(OBSERVABILITY, "OperationsDashboard")["DashboardBody"]["Fn::Sub"][0]
    assert '"OrderLatencyP99"' in body
    assert "${LatencyThresholdMicroseconds}" in body


def test_xray_group_and_sampling_rule() -> None:
    group = properties(OBSERVABILITY, "TracingGroup")
    assert group["FilterExpression"] == 'annotation.Service = "meridian"'
    rule = properties(OBSERVABILITY, "OrderTracingRule")["SamplingRule"]
    assert 0 < rule["FixedRate"] <= 1
    assert rule["URLPath"] == "/orders*"


def test_prometheus_and_grafana_keep_their_data_on_encrypted_efs() -> None:
    for task, access_point in (
        ("PrometheusTaskDefinition", "PrometheusAccessPointId"),
        ("GrafanaTaskDefinition", "GrafanaAccessPointId"),
    ):
        (efs,) = [v for v in properties(MONITORING, task)["Volumes"] if "EFSVolumeConfiguration" in v]
        config = efs["EFSVolumeConfiguration"]
        assert config["TransitEncryption"] == "ENABLED"
        assert config["AuthorizationConfig"] == {"AccessPointId": {"Ref": access_point}, "IAM": "ENABLED"}
    for service in ("PrometheusService", "GrafanaService"):
        deployment = properties(MONITORING, service)["DeploymentConfiguration"]
        assert deployment["MaximumPercent"] == 100  # a single writer on the EFS data


def test_monitoring_tasks_carry_the_repository_configuration() -> None:
    prometheus = _environment("PrometheusTaskDefinition")["PROMETHEUS_CONFIG"]
    assert prometheus == (ROOT / "observability/prometheus/prometheus.yml").read_text()
    grafana = _environment("GrafanaTaskDefinition")
    assert json.loads(grafana["MERIDIAN_DASHBOARD"]) == DASHBOARD
    assert "__PROMETHEUS_URL__" in grafana["GRAFANA_DATASOURCES"]


def test_prometheus_scrapes_the_matching_nodes_metrics_port() -> None:
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    nodes = jobs["matching-nodes"]["ec2_sd_configs"][0]
    assert nodes["port"] == 9101
    assert {"name": "tag:meridian:role", "values": ["matching-node"]} in nodes["filters"]
    assert jobs["engine-tasks"]["dns_sd_configs"][0]["port"] == 9101
    placeholders = set(
        re.findall(r"__[A-Z_]+__", (ROOT / "observability/prometheus/prometheus.yml").read_text())
    )
    command = _container("PrometheusTaskDefinition")["Command"][0]
    assert all(p in command for p in placeholders), "the task fills in every placeholder"


def test_grafana_dashboard_has_p99_latency_fsync_and_order_rate_panels() -> None:
    expressions = _expressions()
    assert any(
        "histogram_quantile(0.99" in e and "meridian_request_latency_seconds_bucket" in e for e in expressions
    )
    assert any(
        "histogram_quantile(0.99" in e and "meridian_journal_fsync_seconds_bucket" in e for e in expressions
    )
    assert any("rate(meridian_requests_total" in e for e in expressions)
    datasources = {p["datasource"]["uid"] for p in DASHBOARD["panels"]}
    provisioned = load_yaml("observability/grafana/provisioning/datasources.yaml")
    assert datasources == {d["uid"] for d in provisioned["datasources"]}
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


def test_dashboard_queries_only_metrics_the_node_exports() -> None:
    from meridian_hotpath.metrics import NodeMetrics  # noqa: PLC0415 - the node package, imported late

    exported = set()
    for line in NodeMetrics().exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    used = {m for e in _expressions() for m in re.findall(r"\bmeridian_[a-z_]+", e)}
    assert used <= exported, used - exported


def test_outputs_for_the_dr_stack_and_operators() -> None:
    assert {"AlertTopicArn", "HotpathHealthAlarmName", "DashboardName", "OrderLatencyAlarmName"} <= set(
        OBSERVABILITY["Outputs"]
    )
