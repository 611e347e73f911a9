"""Fixtures of the matching-node tests: in-process nodes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meridian.client import close_pooled_connections
from meridian_hotpath.app import NodeConfig
from meridian_hotpath.publisher import StreamSink
from tests.unit.hotpath.node_thread import NodeThread

StartNode = Callable[..., NodeThread]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[StartNode]:
    """Start a node on a free port (data in ``tmp_path/node``); keyword arguments go to NodeConfig."""
    started: list[NodeThread] = []

    def start(
        sink: StreamSink | None = None, executions_sink: StreamSink | None = None, **overrides: Any
    ) -> NodeThread:
        settings: dict[str, Any] = {"data_dir": tmp_path / "node", "port": 0, "metrics_port": 0}
        settings.update(overrides)
        node = NodeThread(NodeConfig(**settings), sink, executions_sink)
        started.append(node)
        return node

    yield start
    close_pooled_connections()
    for node in started:
        node.stop()
