"""What each function emits to CloudWatch (EMF through Powertools), and how to read what it did.

``FUNCTION_METRICS`` is the catalogue: per function folder, each metric's unit and dimension
names. The function tests (``tests/unit/*/test_*_metrics.py``) hold each function to its entry by
running its real handler with the environment template.yaml gives it and reading the EMF documents
it prints; the template test (``tests/infra/test_infra_metric_references.py``) holds every alarm
and dashboard that names a metric of the ``Meridian`` namespace to the catalogue, so a renamed
metric or a changed dimension breaks a test before it silently breaks an alarm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Metrics

from tests.infra.templates import load

LAMBDA_NAMESPACE = "Meridian"
SERVICE = frozenset({"service"})
COUNT = "Count"

FUNCTION_METRICS: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "orders_api": {
        "ApiLatency": ("Milliseconds", SERVICE | {"route"}),
        "Rejects": (COUNT, SERVICE | {"reason"}),
    },
    "ledger": {
        "LedgerMessages": (COUNT, SERVICE),
        "TradesRecorded": (COUNT, SERVICE),
        "DuplicateTrades": (COUNT, SERVICE),
        "ExecutionIdCollisions": (COUNT, SERVICE),
    },
    "executions": {
        "DropCopyRecords": (COUNT, SERVICE),
        "TradesPublished": (COUNT, SERVICE),
        "DuplicateDropCopyRecords": (COUNT, SERVICE),
        "UnreadableDropCopyRecords": (COUNT, SERVICE),
        "UndeliveredTradeEvents": (COUNT, SERVICE),
    },
    "market_data": {
        "MarketDataRecords": (COUNT, SERVICE),
        "MarketDataItemsWritten": (COUNT, SERVICE),
        "MarketDataStaleBooks": (COUNT, SERVICE),
        "MarketDataKnownTradesSkipped": (COUNT, SERVICE),
        "MarketDataFailures": (COUNT, SERVICE),
    },
    "surveillance": {
        "SurveillanceMessages": (COUNT, SERVICE),
        **{
            f"Finding_{rule}": (COUNT, SERVICE)
            for rule in ("wash_trade", "price_band", "order_to_trade_ratio", "cancel_ratio")
        },
    },
}
# The functions that emit no custom metric (their failures show in AWS/Lambda and AWS/States).
SILENT_FUNCTIONS = ("migrations", "order_flow", "runbook_tasks")


@dataclass(frozen=True)
class Emitted:
    namespace: str
    name: str
    unit: str
    dimensions: dict[str, str]
    value: float

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(self.dimensions)


def emitted(stdout: str) -> list[Emitted]:
    """Every metric of every EMF document printed in ``stdout`` (other lines are ignored)."""
    found = []
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document: dict[str, Any] = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            (dimension_set,) = directive["Dimensions"]  # Powertools writes one set per document
            dimensions = {name: str(document[name]) for name in dimension_set}
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.append(
                        Emitted(directive["Namespace"], metric["Name"], metric["Unit"], dimensions, value)
                    )
    return found


def function_environment(logical_id: str) -> dict[str, str]:
    """The POWERTOOLS_* variables template.yaml gives ``logical_id`` (Globals, then its own)."""
    template = load("template.yaml")
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    return {k: v for k, v in variables.items() if k.startswith("POWERTOOLS_") and isinstance(v, str)}


def assert_catalogued(function: str, metrics: list[Emitted], service: str) -> set[str]:
    """Every metric emitted is ``function``'s catalogue entry (namespace, unit, dimensions, the
    service the template names); returns the names seen."""
    catalogue = FUNCTION_METRICS[function]
    for metric in metrics:
        assert metric.namespace == LAMBDA_NAMESPACE, metric
        assert metric.name in catalogue, f"{function} emits {metric.name}, which the catalogue lacks"
        unit, dimensions = catalogue[metric.name]
        assert (metric.unit, metric.dimension_names) == (unit, dimensions), metric
        assert metric.dimensions["service"] == service, metric
    return {metric.name for metric in metrics}


def emit_as_deployed(monkeypatch: Any, logical_id: str) -> str:
    """Set the POWERTOOLS_* environment template.yaml gives ``logical_id``, metrics on; load the
    handler after this. Returns the service name its metrics carry.

    Powertools keeps metrics in one buffer per process, shared by every ``Metrics`` instance, and a
    test that ran with metrics disabled left its additions there, unflushed: emptied first."""
    Metrics().clear_metrics()
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    environment = function_environment(logical_id)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment["POWERTOOLS_SERVICE_NAME"]


def totals(metrics: list[Emitted]) -> dict[str, float]:
    summed: dict[str, float] = {}
    for metric in metrics:
        summed[metric.name] = summed.get(metric.name, 0.0) + metric.value
    return summed
