"""Every alarm and dashboard names metrics that something of ours emits, with its dimensions.

CloudWatch matches a metric by namespace, name and the full set of dimensions: an alarm on a
renamed metric, or one missing a dimension the emitter adds, watches nothing and never fires. The
references are read from every template (alarms, metric-math alarms, dashboard bodies); the
emitters are the functions (``tests/metrics_catalogue.py``, which the function tests hold each
handler to), the node's CloudWatch bridge (``Meridian/Hotpath``) and the runbooks' own
``PutMetricData`` steps (``Meridian/Runbooks``). AWS namespaces are AWS's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook_tasks import timeline

from hotpath.deploy.cloudwatch_bridge import metric_data, parse_exposition, replication_metric_data
from meridian_hotpath.metrics import NodeMetrics
from tests.infra.templates import ROOT, all_template_paths, load
from tests.metrics_catalogue import FUNCTION_METRICS, LAMBDA_NAMESPACE, function_environment


@dataclass(frozen=True)
class Reference:
    where: str
    namespace: str
    name: str
    dimensions: frozenset[str]


def _sub_text(value: Any) -> str:
    """A DashboardBody: a string, or Fn::Sub of one (its ${...} become placeholders: a word inside
    a JSON string, a number outside one)."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    text = text[0] if isinstance(text, list) else text
    return re.sub(r"\$\{[^}]+\}", "0", re.sub(r"\$\{[^}]+\}(?=[^\"\n]*\")", "X", text))


def _dashboard_references(where: str, body: Any) -> list[Reference]:
    found = []
    for widget in json.loads(_sub_text(body))["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            expressions = [f["expression"] for f in entry if isinstance(f, dict) and "expression" in f]
            found += [r for e in expressions if (r := _search_reference(where, e)) is not None]
            fields = [f for f in entry if isinstance(f, str)]
            if not fields:
                assert expressions, f"{where}: a dashboard metric is neither spelled out nor an expression"
                continue
            assert fields[0] not in (".", "..."), f"{where}: spell dashboard metrics out in full"
            namespace, name, *pairs = fields
            found.append(Reference(where, namespace, name, frozenset(pairs[0::2])))
    return found


_SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]+)\}\s+MetricName=\"(?P<name>[^\"]+)\"")


def _search_reference(where: str, expression: str) -> Reference | None:
    """``SEARCH('{Namespace,dim,...} MetricName="X" ...')``: the metrics with exactly those dimensions."""
    match = _SEARCH.search(expression)
    assert match is not None or "SEARCH" not in expression, f"{where}: unreadable {expression!r}"
    if match is None:
        return None
    namespace, *dimensions = (part.strip() for part in match["schema"].split(","))
    return Reference(where, namespace, match["name"], frozenset(dimensions))


def _alarm_references(where: str, properties: dict[str, Any]) -> list[Reference]:
    if "MetricName" in properties:
        names = frozenset(d["Name"] for d in properties.get("Dimensions", []))
        return [Reference(where, properties["Namespace"], properties["MetricName"], names)]
    found = []
    for query in properties.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric")
        if metric:
            names = frozenset(d["Name"] for d in metric.get("Dimensions", []))
            found.append(Reference(where, metric["Namespace"], metric["MetricName"], names))
    return found


def references() -> list[Reference]:
    found = []
    for path in all_template_paths():
        for logical_id, resource in load(path).get("Resources", {}).items():
            where = f"{path}:{logical_id}"
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                found += _alarm_references(where, resource["Properties"])
            elif resource["Type"] == "AWS::CloudWatch::Dashboard":
                found += _dashboard_references(where, resource["Properties"]["DashboardBody"])
    return found


def lambda_metrics() -> dict[str, frozenset[str]]:
    return {name: dims for metrics in FUNCTION_METRICS.values() for name, (_, dims) in metrics.items()}


def bridge_metrics() -> dict[str, frozenset[str]]:
    """What the node's CloudWatch bridge publishes when the node exposes everything it can."""
    metrics = NodeMetrics()
    metrics.observe_latency("new_order", 0.0001)
    metrics.count_request("new_order", "accepted")
    shard = {  # a replicated shard's primary (roles.py) and standby's follower (follower.py) gauges
        "meridian_role_primary": 1.0,
        "meridian_lease_epoch": 2.0,
        "meridian_replication_connected": 1.0,
        "meridian_replication_lag_records": 0.0,
        "meridian_replica_checksum_mismatches": 0.0,
    }
    metrics.state.extra_gauges = lambda: {"meridian_market_volatility": 1.0, **shard}
    samples = parse_exposition(metrics.exposition().decode())
    data, _ = metric_data(samples, 0.0, 10.0, "dev")
    data += replication_metric_data(samples, 1.0, "dev")[0]
    return {d["MetricName"]: frozenset(x["Name"] for x in d["Dimensions"]) for d in data}


def runbook_metrics() -> dict[str, frozenset[str]]:
    found = {}
    for path in (ROOT / "statemachines").glob("*.asl.json"):
        for state in _states(json.loads(path.read_text())):
            if state.get("Resource", "").endswith(":cloudwatch:putMetricData"):
                for datum in _metric_data(state["Parameters"]):
                    found[datum["MetricName"]] = frozenset(d["Name"] for d in datum.get("Dimensions", []))
    return found


def _metric_data(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """A step's MetricData: written in the definition, or (the switchover runbooks' recovery time)
    the datums the recovery-time function computes, with every metric it can emit."""
    if "MetricData" in parameters:
        return list(parameters["MetricData"])
    assert parameters["MetricData.$"] == "$.rto.metric_data", parameters
    now = datetime.now(UTC)
    data: list[dict[str, Any]] = timeline.metric_data(
        "dr-failover", "dev", 1.0, 1.0, [timeline.Step("halt", now, 0.1)]
    )
    return data


def _states(definition: dict[str, Any]) -> list[dict[str, Any]]:
    states = []
    for state in definition.get("States", {}).values():
        states.append(state)
        for branch in state.get("Branches", []):
            states += _states(branch)
        if "Iterator" in state or "ItemProcessor" in state:
            states += _states(state.get("ItemProcessor") or state["Iterator"])
    return states


EMITTERS = {
    LAMBDA_NAMESPACE: lambda_metrics,
    "Meridian/Hotpath": bridge_metrics,
    "Meridian/Runbooks": runbook_metrics,
}


def test_every_alarm_and_dashboard_metric_of_ours_is_emitted_with_those_dimensions() -> None:
    found = references()
    ours = [r for r in found if not r.namespace.startswith("AWS/")]
    assert {r.name for r in ours} >= {"OrderLatencyP99", "MarketVolatility"}, "the reader found the alarms"
    emitted = {namespace: emitters() for namespace, emitters in EMITTERS.items()}
    for reference in ours:
        assert reference.namespace in emitted, (
            f"{reference.where}: nothing of ours emits to {reference.namespace}"
        )
        metrics = emitted[reference.namespace]
        assert reference.name in metrics, (
            f"{reference.where}: no emitter of {reference.namespace}/{reference.name}"
        )
        assert reference.dimensions == metrics[reference.name], (
            f"{reference.where}: {reference.name} is emitted with dimensions "
            f"{sorted(metrics[reference.name])}, the reference names {sorted(reference.dimensions)}"
        )


def test_the_functions_emit_to_the_namespace_the_template_gives_them() -> None:
    for logical_id in ("OrdersApiFunction", "LedgerFunction", "ExecutionsFunction", "MarketDataFunction"):
        assert function_environment(logical_id)["POWERTOOLS_METRICS_NAMESPACE"] == LAMBDA_NAMESPACE
    runbooks = load("template.yaml")["Resources"]["ComplianceReportStateMachine"]["Properties"]
    assert runbooks["DefinitionSubstitutions"]["MetricNamespace"] == "Meridian/Runbooks"


def test_the_reader_sees_a_wrong_dimension() -> None:
    body = {"Fn::Sub": json.dumps({"widgets": [{"properties": {"metrics": [
        ["Meridian", "Rejects", "reason", "RISK", {"stat": "Sum"}]]}}]})}  # fmt: skip
    [reference] = _dashboard_references("test", body)
    assert reference.dimensions == frozenset({"reason"})
    assert (
        reference.dimensions != lambda_metrics()["Rejects"]
    )  # service is missing: CloudWatch would not match
