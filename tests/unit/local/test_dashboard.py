"""The local dashboard's data: the node's metrics and the order function's EMF, and its vendored library."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from meridian_local.apigateway.dashboard import ASSETS, DashboardSource, emf_documents, parse_node_metrics

NODE_METRICS = """\
# TYPE meridian_requests counter
meridian_requests_total{type="new_order",outcome="accepted"} 40.0
meridian_requests_total{type="new_stop_order",outcome="accepted"} 2.0
meridian_requests_total{type="cancel",outcome="accepted"} 5.0
# TYPE meridian_trades counter
meridian_trades_total{symbol="AAPL"} 7.0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
# TYPE meridian_request_latency_quantile_seconds gauge
meridian_request_latency_quantile_seconds{quantile="p99"} 0.0025
# TYPE meridian_book_depth_levels gauge
meridian_book_depth_levels{symbol="AAPL",side="bid"} 3.0
"""


def test_the_nodes_metrics_become_the_dashboards_figures() -> None:
    figures = parse_node_metrics(NODE_METRICS)
    assert (figures["orders"], figures["requests"], figures["trades"]) == (42, 47, 7)
    assert figures["cpu_seconds"] == 1.5
    assert figures["latency_us"] == {"p99": 2500.0}
    assert figures["book_levels"] == {"AAPL bid": 3}


def _emf(at: float, **fields: object) -> str:
    return json.dumps({"_aws": {"Timestamp": int(at * 1000), "CloudWatchMetrics": []}, **fields})


def test_api_latency_and_rejects_come_from_the_functions_emf(tmp_path: Path) -> None:
    now = time.time()
    log = tmp_path / "orders-api.log"
    lines = [
        '{"level":"INFO","message":"a log line, not a metric"}',
        _emf(now - 1, route="POST /orders", ApiLatency=[10.0]),
        _emf(now - 2, route="POST /orders", ApiLatency=[30.0]),
        _emf(now - 2, route="GET /orders", ApiLatency=[99.0]),  # another route
        _emf(now - 30, route="POST /orders", ApiLatency=[500.0]),  # outside the latency window
        _emf(now - 5, reason="PRICE_BAND", Rejects=1),
        _emf(now - 120, reason="LOT_SIZE", Rejects=1),  # outside the minute
    ]
    log.write_text("\n".join(lines) + "\n")
    assert len(emf_documents(log)) == 6
    api = DashboardSource("http://127.0.0.1:9/metrics", log).api(now)
    assert (api["post_orders_p50_ms"], api["post_orders_p99_ms"], api["post_orders_in_window"]) == (
        10.0,
        30.0,
        2,
    )
    assert api["rejects_last_minute"] == {"PRICE_BAND": 1}


def test_a_node_that_does_not_answer_shows_as_down(tmp_path: Path) -> None:
    snapshot = DashboardSource("http://127.0.0.1:9/metrics", tmp_path / "none.log").snapshot()
    assert snapshot["node"] == {"up": False}
    assert snapshot["api"]["post_orders_in_window"] == 0


def test_the_vendored_chart_library_is_the_one_recorded() -> None:
    vendored = json.loads((ASSETS / "VENDORED.json").read_text())
    assert (vendored["package"], vendored["license"]) == ("uplot", "MIT")
    for name, digest in vendored["sha256"].items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, name
    assert (ASSETS / "uPlot.LICENSE").read_text().startswith("The MIT License")
