"""A node that starts again in its own process (fenced, or cut back) listens where it did."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from meridian_hotpath.app import NodeConfig, _pinned
from meridian_hotpath.shard import ShardConfig


def test_ports_picked_at_the_first_start_are_kept_for_a_restart(tmp_path: Path) -> None:
    store: Any = object()
    shard = ShardConfig(shard="A", store=store, node_id="n1", replication_port=0)
    config = NodeConfig(data_dir=tmp_path, port=0, metrics_port=0, shard=shard)
    with socket.socket() as replication:
        replication.bind(("127.0.0.1", 0))
        running: Any = SimpleNamespace(
            port=40001, metrics_port=40002, role=SimpleNamespace(replication_socket=replication)
        )
        pinned = _pinned(config, running)
        assert pinned.shard is not None
        assert (pinned.port, pinned.metrics_port) == (40001, 40002)
        assert pinned.shard.replication_port == replication.getsockname()[1] != 0
        assert pinned.shard.node_id == "n1"  # everything else as it was


def test_a_node_without_metrics_or_shard_keeps_them_off(tmp_path: Path) -> None:
    running: Any = SimpleNamespace(port=40003, metrics_port=None, role=None)
    pinned = _pinned(NodeConfig(data_dir=tmp_path, port=0), running)
    assert (pinned.port, pinned.metrics_port, pinned.shard) == (40003, None, None)
