"""The node as a real process: startup line, trading, metrics, graceful SIGTERM, restart."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from meridian.client import HotpathClient, HotpathUnavailable, close_pooled_connections
from meridian.domain import Side
from meridian.protocol import Ack, Fill
from meridian_hotpath.process import NodeProcess, NodeStartError
from meridian_hotpath.recovery import snapshot_dir

pytestmark = pytest.mark.integration


def test_serve_trade_shutdown_and_recover(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    with NodeProcess.start(data_dir, "--metrics-port", "0") as node:
        assert node.seq == 0
        assert node.host == "127.0.0.1"
        assert node.metrics_port is not None
        client = HotpathClient(node.host, node.port)
        client.submit("s1", "maker", "ESZ6", Side.SELL, 3, 600_025)
        answer = client.submit("b1", "taker", "ESZ6", Side.BUY, 2, 600_025)
        assert [type(m) for m in answer.messages] == [Ack, Fill]
        checksum = client.snapshot().checksum
        with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/healthz", timeout=10) as response:
            assert json.load(response)["seq"] == 2
        assert node.terminate() == 0
    close_pooled_connections()
    assert any(snapshot_dir(data_dir).glob("*.snap"))
    with pytest.raises(HotpathUnavailable):
        HotpathClient(node.host, node.port, connect_timeout=1).heartbeat()
    with NodeProcess.start(data_dir) as again:
        assert again.seq == 2
        assert again.metrics_port is None
        assert HotpathClient(again.host, again.port).snapshot().checksum == checksum
        assert again.terminate() == 0


def test_instruments_file_limits_the_symbols_a_node_trades(tmp_path: Path) -> None:
    instruments = tmp_path / "instruments.json"
    instruments.write_text(json.dumps([{"symbol": "TSLA", "tick_size": 5, "reference_price": 25_000}]))
    with NodeProcess.start(tmp_path / "node", "--instruments", str(instruments)) as node:
        client = HotpathClient(node.host, node.port)
        assert isinstance(client.submit("t1", "a", "TSLA", Side.BUY, 1, 25_005).messages[0], Ack)
        assert type(client.submit("t2", "a", "AAPL", Side.BUY, 1, 19_000).messages[0]).__name__ == "Reject"
        assert node.terminate() == 0


def test_a_node_that_cannot_start_says_so_and_leaves_no_process(tmp_path: Path) -> None:
    with pytest.raises(NodeStartError, match="node did not start \\(exit 2\\)"):
        NodeProcess.start(tmp_path / "node", "--snapshot-every", "0")  # refused by the command line
