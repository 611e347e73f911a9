"""The metrics endpoint: Prometheus exposition and the health check."""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meridian.client import HotpathClient
from meridian.domain import Side
from meridian_hotpath.metrics import LoopHistogram, WindowQuantiles
from meridian_hotpath.volatility import TRADING_SECONDS_PER_YEAR
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import WAIT, NodeThread


def get(node: NodeThread, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{node.node.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_window_quantiles_cover_the_most_recent_window_to_bucket_precision() -> None:
    window = WindowQuantiles(size=1000)
    for value in range(5000):  # only the last 1000 (4000..4999 ns) remain
        window.add(value)
    quantiles = window.quantiles()
    for name, exact in (("p50", 4499), ("p99", 4989), ("p999", 4998)):  # nearest rank
        assert exact / 1e9 <= quantiles[name] <= exact * 1.07 / 1e9, name
    assert WindowQuantiles().quantiles() == {}


def test_window_quantiles_weigh_an_observation_by_its_count_and_drop_old_ones_whole() -> None:
    window = WindowQuantiles(size=100)
    window.add(1_000_000, 90)  # 1 ms for 90 requests
    window.add(10_000, 10)  # 10 us for 10
    assert window.quantiles()["p50"] == pytest.approx(1e-3, rel=0.07)
    window.add(10_000, 95)  # the 90 slow ones leave the window together
    quantiles = window.quantiles()
    assert quantiles["p50"] == quantiles["p999"] == pytest.approx(10e-6, rel=0.07)


def test_metrics_endpoint_exposes_rates_latencies_commits_depth_and_connections(
    start_node: StartNode,
) -> None:
    node = start_node()
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("r1", "a", "AAPL", Side.BUY, 5, 18990)
    client.submit("r2", "a", "AAPL", Side.SELL, 5, 19010)
    client.submit("r3", "a", "AAPL", Side.SELL, 5, 19020)
    client.submit("r3", "a", "AAPL", Side.SELL, 5, 19020)  # duplicate
    client.submit("r4", "a", "NOPE", Side.SELL, 5, 19020)  # unknown symbol
    client.heartbeat()
    status, content_type, text = get(node, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    found = samples(text)
    assert found[("meridian_requests_total", (("outcome", "accepted"), ("type", "new_order")))] == 3
    assert found[("meridian_requests_total", (("outcome", "duplicate"), ("type", "new_order")))] == 1
    assert found[("meridian_requests_total", (("outcome", "rejected"), ("type", "new_order")))] == 1
    assert found[("meridian_requests_total", (("outcome", "accepted"), ("type", "heartbeat")))] == 1
    assert found[("meridian_request_latency_seconds_count", (("type", "order"),))] == 5
    assert found[("meridian_request_latency_seconds_count", (("type", "heartbeat"),))] == 1
    assert ("meridian_request_latency_seconds_bucket", (("le", "5e-06"), ("type", "order"))) in found
    assert ("meridian_request_latency_seconds_bucket", (("le", "0.01"), ("type", "order"))) in found
    assert 1 <= found[("meridian_journal_fsync_seconds_count", ())] <= 5  # the syncer may cover several
    assert found[("meridian_journal_batch_records_count", ())] == 5
    assert found[("meridian_journal_durable_seq", ())] == 5
    assert found[("meridian_ack_mode_fsync", ())] == 1
    assert found[("meridian_live_orders", ())] == 3
    assert found[("meridian_book_depth_levels", (("side", "bid"), ("symbol", "AAPL")))] == 1
    assert found[("meridian_book_depth_levels", (("side", "ask"), ("symbol", "AAPL")))] == 2
    assert found[("meridian_book_depth_levels", (("side", "ask"), ("symbol", "MSFT")))] == 0
    assert found[("meridian_connections", ())] == 1
    assert found[("meridian_engine_seq", ())] == 5
    for quantile in ("p50", "p99", "p999"):
        assert found[("meridian_request_latency_quantile_seconds", (("quantile", quantile),))] > 0


def test_healthz_reports_status_seq_and_symbols(start_node: StartNode) -> None:
    node = start_node()
    HotpathClient("127.0.0.1", node.port).submit("h1", "a", "MSFT", Side.BUY, 1, 42000)
    status, content_type, text = get(node, "/healthz")
    assert (status, content_type) == (200, "application/json")
    health = json.loads(text)
    assert health["status"] == "ok"
    assert health["seq"] == 1
    assert health["symbols"] == ["AAPL", "BTCUSD", "ESZ6", "MSFT"]


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/extra"])
def test_unknown_paths_are_not_found(start_node: StartNode, path: str) -> None:
    assert get(start_node(), path)[0] == 404


def test_loop_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    histogram = LoopHistogram((1e-5, 1e-4, 1e-3))
    for value in (5e-6, 1e-5, 5e-5, 2e-3):
        histogram.observe(value)
    assert histogram.cumulative() == [("1e-05", 2.0), ("0.0001", 3.0), ("0.001", 3.0), ("+Inf", 4.0)]
    assert histogram.total == pytest.approx(5e-6 + 1e-5 + 5e-5 + 2e-3)


def test_market_volatility_follows_the_mid_price_and_is_exported(start_node: StartNode) -> None:
    # One sample at start (empty books: nothing to sample), then only the samples taken here.
    node = start_node(volatility_interval=3600.0)
    matching = node.node.node
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("v1", "a", "AAPL", Side.BUY, 5, 18990)
    client.submit("v2", "b", "AAPL", Side.SELL, 5, 19010)
    base = time.monotonic() + 10_000  # after any sample the node's own timer takes
    node.call(lambda: matching.sample_volatility(base))
    client.submit("v3", "a", "AAPL", Side.BUY, 5, 19000)  # best bid up: the mid moves 19000 -> 19005
    node.call(lambda: matching.sample_volatility(base + 1))
    expected = 100 * abs(math.log(19005 / 19000)) * math.sqrt(TRADING_SECONDS_PER_YEAR)
    found = samples(get(node, "/metrics")[2])
    assert found[("meridian_market_volatility", ())] == pytest.approx(expected)
    assert found[("meridian_market_volatility", ())] == pytest.approx(
        matching.volatility.annualised_percent("AAPL")
    )


def test_the_metrics_endpoint_answers_only_gets_and_drops_what_is_not_http(start_node: StartNode) -> None:
    node = start_node()
    port = node.node.metrics_port
    assert port is not None
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=WAIT)  # noqa: S310 - http://127.0.0.1, built above
    assert refused.value.code == 405
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        raw.sendall(b"not http at all")
        raw.shutdown(socket.SHUT_WR)  # no header terminator: the endpoint closes without answering
        assert raw.recv(1024) == b""
    assert get(node, "/healthz")[0] == 200  # and goes on serving
