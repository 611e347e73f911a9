"""Publish a matching node's latency, order rate and market volatility to CloudWatch.

The node exposes Prometheus metrics on its metrics port; CloudWatch alarms (the sub-millisecond
latency alarm) and the Auto Scaling policy (market volatility) need them as CloudWatch metrics in the
``Meridian/Hotpath`` namespace with an ``Environment`` dimension. This helper runs beside the node
(meridian-cloudwatch-bridge.service), reads ``/metrics`` every ``MERIDIAN_BRIDGE_INTERVAL`` seconds
and publishes:

============================  =================================================  ==============
CloudWatch metric             from the node's metric                             unit
============================  =================================================  ==============
OrderLatencyP99               meridian_request_latency_quantile_seconds{p99}     Microseconds
OrderLatencyP999              meridian_request_latency_quantile_seconds{p999}    Microseconds
OrderRate                     rate of meridian_requests_total                    Count/Second
MarketVolatility              meridian_market_volatility (when the node has it)  None
NodeUp                        1 when /metrics answered, else 0                   Count
============================  =================================================  ==============

A node of a replicated shard (``--shard``) adds (``replication_metric_data``):

============================  =================================================  ==============
CloudWatch metric             from the node's metric                             unit
============================  =================================================  ==============
ReplicationConnected          meridian_replication_connected (primary only)      Count
ReplicationLagRecords         meridian_replication_lag_records (primary only)    Count
ReplicaChecksumMismatches     meridian_replica_checksum_mismatches (standby)     Count
LeaseEpoch                    meridian_lease_epoch                               None
LeaseEpochChanges             1 when the epoch grew since the last scrape        Count
============================  =================================================  ==============

ReplicaChecksumMismatches is the standby's count since its process started: a mismatch keeps its
alarm on until the standby is rebuilt. The epoch is kept in the lease table, so a grown epoch is a
takeover (or a primary that lost its lease and took it again) whichever process restarted.
"""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("meridian.cloudwatch_bridge")

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_exposition(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition (comments and malformed lines skipped)."""
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = dict(LABEL.findall(match["labels"] or ""))
        samples.append(Sample(match["name"], labels, value))
    return samples


def _first(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def metric_data(
    samples: list[Sample], previous_requests: float | None, interval: float, environment: str
) -> tuple[list[dict[str, Any]], float]:
    """CloudWatch MetricData for one scrape, and the request total to diff against next time."""
    dimensions = [{"Name": "Environment", "Value": environment}]
    data: list[dict[str, Any]] = [{"MetricName": "NodeUp", "Value": 1.0, "Unit": "Count"}]
    for quantile, metric in (("p99", "OrderLatencyP99"), ("p999", "OrderLatencyP999")):
        seconds = _first(samples, "meridian_request_latency_quantile_seconds", quantile=quantile)
        if seconds is not None:
            data.append({"MetricName": metric, "Value": seconds * 1e6, "Unit": "Microseconds"})
    requests = sum(s.value for s in samples if s.name == "meridian_requests_total")
    if previous_requests is not None and requests >= previous_requests and interval > 0:
        rate = (requests - previous_requests) / interval
        data.append({"MetricName": "OrderRate", "Value": rate, "Unit": "Count/Second"})
    volatility = _first(samples, "meridian_market_volatility")
    if volatility is not None:
        data.append({"MetricName": "MarketVolatility", "Value": volatility, "Unit": "None"})
    for datum in data:
        datum["Dimensions"] = dimensions
    return data, requests


REPLICATION_GAUGES = (
    ("meridian_replication_connected", "ReplicationConnected", "Count"),
    ("meridian_replication_lag_records", "ReplicationLagRecords", "Count"),
    ("meridian_replica_checksum_mismatches", "ReplicaChecksumMismatches", "Count"),
    ("meridian_lease_epoch", "LeaseEpoch", "None"),
)


def replication_metric_data(
    samples: list[Sample], previous_epoch: float | None, environment: str
) -> tuple[list[dict[str, Any]], float | None]:
    """A replicated shard's CloudWatch MetricData for one scrape (none from a node without a
    shard), and the lease epoch to compare with next time."""
    data: list[dict[str, Any]] = []
    for node_metric, metric, unit in REPLICATION_GAUGES:
        value = _first(samples, node_metric)
        if value is not None:
            data.append({"MetricName": metric, "Value": value, "Unit": unit})
    epoch = _first(samples, "meridian_lease_epoch")
    if epoch is not None and previous_epoch is not None:
        changed = 1.0 if epoch > previous_epoch else 0.0
        data.append({"MetricName": "LeaseEpochChanges", "Value": changed, "Unit": "Count"})
    for datum in data:
        datum["Dimensions"] = [{"Name": "Environment", "Value": environment}]
    return data, epoch if epoch is not None else previous_epoch


def node_down(environment: str) -> list[dict[str, Any]]:
    return [
        {
            "MetricName": "NodeUp",
            "Value": 0.0,
            "Unit": "Count",
            "Dimensions": [{"Name": "Environment", "Value": environment}],
        }
    ]


def scrape(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - a fixed loopback URL
        body: bytes = answer.read()
    return body.decode()


def main() -> None:  # pragma: no cover - the loop around the tested pieces
    import boto3  # noqa: PLC0415 - only the running bridge needs AWS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = os.environ.get("MERIDIAN_METRICS_URL", "http://127.0.0.1:9101/metrics")
    namespace = os.environ.get("MERIDIAN_CLOUDWATCH_NAMESPACE", "Meridian/Hotpath")
    environment = os.environ["MERIDIAN_ENVIRONMENT"]
    interval = float(os.environ.get("MERIDIAN_BRIDGE_INTERVAL", "10"))
    cloudwatch = boto3.client("cloudwatch")
    previous: float | None = None
    epoch: float | None = None
    while True:
        started = time.monotonic()
        try:
            samples = parse_exposition(scrape(url))
            data, previous = metric_data(samples, previous, interval, environment)
            replication, epoch = replication_metric_data(samples, epoch, environment)
            data += replication
        except OSError as exc:
            log.warning("node metrics unavailable: %s", exc)
            data, previous = node_down(environment), None
        try:
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
        except Exception:
            log.exception("put_metric_data failed")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
