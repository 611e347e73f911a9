"""``/dashboard`` on the local REST API: live charts of the platform while it trades.

The page (uPlot, vendored from the npm registry in ``dashboard_assets``) polls ``/dashboard/data``
every second and charts, over the last minutes: the order latency percentiles (POST /orders as the
API answered it, and the matching node's order->ack), the orders per second, the rejects by reason,
the node's CPU per order, the book depth per symbol and the pipeline lag (trades the node made that
the ledger has not recorded yet). ``DashboardSource.snapshot`` gathers one sample: the node's
``/metrics`` (Prometheus text), the order function's EMF metrics from its log file (``ApiLatency``
by route, ``Rejects`` by reason) and the ledger's trade count. Rates are worked out in the page
from successive samples.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meridian.stats import nearest_rank

ASSETS = Path(__file__).with_name("dashboard_assets")
ASSET_TYPES = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css"}
LATENCY_WINDOW_S = 10.0  # the API latency percentiles are over the last 10 s
REJECTS_WINDOW_S = 60.0
TAIL_BYTES = 4 << 20  # enough of the log for a minute of requests
ORDER_TYPES = ("new_order", "new_stop_order")


class DashboardSource:
    def __init__(self, metrics_url: str, api_log: Path, database_url: str = "") -> None:
        self.metrics_url, self.api_log, self.database_url = metrics_url, api_log, database_url

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        node = self.node()
        return {
            "t": now,
            "node": node,
            "api": self.api(now),
            "pipeline": {"node_trades": node.get("trades"), "ledger_trades": self.ledger_trades()},
        }

    # ---- the matching node ----------------------------------------------------------------------

    def node(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as answer:  # noqa: S310 - loopback
                text = answer.read().decode()
        except OSError:
            return {"up": False}
        return {"up": True, **parse_node_metrics(text)}

    # ---- the order function's EMF metrics --------------------------------------------------------

    def api(self, now: float) -> dict[str, Any]:
        latencies: list[float] = []
        rejects: dict[str, int] = {}
        for document in emf_documents(self.api_log):
            age = now - document.get("_aws", {}).get("Timestamp", 0) / 1000
            if (
                document.get("route") == "POST /orders"
                and "ApiLatency" in document
                and age <= LATENCY_WINDOW_S
            ):
                values = document["ApiLatency"]
                latencies += values if isinstance(values, list) else [values]
            if "Rejects" in document and "reason" in document and age <= REJECTS_WINDOW_S:
                rejects[document["reason"]] = rejects.get(document["reason"], 0) + 1
        latencies.sort()
        return {
            "post_orders_p50_ms": round(nearest_rank(latencies, 0.5), 2) if latencies else None,
            "post_orders_p99_ms": round(nearest_rank(latencies, 0.99), 2) if latencies else None,
            "post_orders_in_window": len(latencies),
            "rejects_last_minute": rejects,
        }

    # ---- the ledger ------------------------------------------------------------------------------

    def ledger_trades(self) -> int | None:
        if not self.database_url:
            return None
        import psycopg  # noqa: PLC0415 - only when a ledger is configured

        try:
            with psycopg.connect(self.database_url, connect_timeout=2, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM trades").fetchone()
        except psycopg.Error:
            return None
        return int(row[0]) if row else 0


def parse_node_metrics(text: str) -> dict[str, Any]:
    """What the dashboard charts from a node's /metrics."""
    out: dict[str, Any] = {"orders": 0, "requests": 0, "trades": 0, "cpu_seconds": None, "latency_us": {}}
    depth: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if sample.name == "meridian_requests_total":
                out["requests"] += int(value)
                if labels.get("type") in ORDER_TYPES:
                    out["orders"] += int(value)
            elif sample.name == "meridian_trades_total":
                out["trades"] += int(value)
            elif sample.name == "process_cpu_seconds_total":
                out["cpu_seconds"] = value
            elif sample.name == "meridian_request_latency_quantile_seconds":
                out["latency_us"][labels.get("quantile", "?")] = round(value * 1e6, 1)
            elif sample.name == "meridian_book_depth_levels":
                key = f"{labels.get('symbol', '?')} {labels.get('side', '')}".strip()
                depth[key] = int(value)
    out["book_levels"] = dict(sorted(depth.items()))
    return out


def emf_documents(log: Path, tail: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The EMF documents among the last ``tail`` bytes of a function's log file."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, os.path.getsize(log) - tail))
            lines = handle.read().splitlines()
    except OSError:
        return []
    documents = []
    for line in lines:
        if line.startswith(b"{") and b'"_aws"' in line:
            try:
                documents.append(json.loads(line))
            except ValueError:
                continue  # the first line of the tail may be cut
    return documents


def page() -> str:
    return (ASSETS / "dashboard.html").read_text()
