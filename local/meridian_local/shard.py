"""The local matching shards: a primary and its hot standby, and with ``MERIDIAN_SHARDS=2`` a second
pair owning ``SECOND_SHARD_SYMBOLS``.

Each node runs as its own process (``meridian_hotpath``) on loopback, in ``--ack-after replica``
with its lease in the template's lease table: kill -9 the primary and the standby takes over. The
nodes log on their clients with the session keys the template's secrets hold, as in AWS.
``start`` answers the routing table the functions read (``MERIDIAN_ROUTES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meridian.session_auth import SessionKey, load_secret_keys, write_key_file
from meridian_hotpath.process import NodeProcess
from meridian_local.cloud.stack_model import Stack
from meridian_local.settings import HOST, Endpoints, PlatformConfig

SHARD = "A"  # the local shard's name in the lease table
NODE_NAMES = ("node-a", "node-b")  # the first to start leads; the other is its standby
# MERIDIAN_SHARDS=2: a second shard owns these symbols (the first keeps the others, the default).
SECOND_SHARD, SECOND_SHARD_NODES, SECOND_SHARD_SYMBOLS = "B", ("node-c", "node-d"), ("MSFT", "BTCUSD")
# Each node's shard and node number (the top bits of its trade ids: unique across the fleet; the
# first shard's is the template's HotpathNodeNumber default).
NODE_SHARDS = {
    "node-a": (SHARD, 1),
    "node-b": (SHARD, 1),
    "node-c": (SECOND_SHARD, 2),
    "node-d": (SECOND_SHARD, 2),
}


@dataclass
class LocalShards:
    config: PlatformConfig
    endpoints: Endpoints
    stack: Stack
    client: Callable[[str], Any]
    nodes: dict[str, NodeProcess] = field(default_factory=dict)  # by name (NODE_NAMES)

    def lease_table(self) -> str:
        table = self.stack.ref("LeaseTable")
        if table is None:
            raise RuntimeError("the template provisioned no shard lease table (LeaseTable)")
        return table

    def start(self) -> dict[str, Any]:
        """The primary (it takes the shard's lease), then its standby; the functions route to both.
        With two shards, the second's pair too, owning SECOND_SHARD_SYMBOLS."""
        first, second = NODE_NAMES
        self.start_node(first, self.config.node_port, self.config.metrics_port)
        primary = self.nodes[first]
        self.endpoints.node = f"{primary.host}:{primary.port}"
        self.endpoints.metrics = f"http://{primary.host}:{primary.metrics_port}/metrics"
        self.endpoints.routes = self.endpoints.node
        if self.config.standby:
            self.start_node(second, self.config.standby_port, self.config.standby_metrics_port)
            standby = self.nodes[second]
            self.endpoints.standby = f"{standby.host}:{standby.port}"
            self.endpoints.standby_metrics = f"http://{standby.host}:{standby.metrics_port}/metrics"
            self.endpoints.routes = f"{self.endpoints.node},{self.endpoints.standby}"
        self.endpoints.shards = {SHARD: self.endpoints.routes}
        table: dict[str, Any] = {"default": self.endpoints.routes}
        if self.config.shards == 2:
            names = SECOND_SHARD_NODES if self.config.standby else SECOND_SHARD_NODES[:1]
            for name in names:
                self.start_node(name, 0, 0)
            nodes = ",".join("{}:{}".format(*self.node_address(name)) for name in names)
            self.endpoints.shards[SECOND_SHARD] = nodes
            table["symbols"] = dict.fromkeys(SECOND_SHARD_SYMBOLS, nodes)
        return table

    def node_address(self, name: str) -> tuple[str, int]:
        node = self.nodes[name]
        return node.host, node.port

    def start_node(self, name: str, port: int, metrics_port: int) -> NodeProcess:
        """Start (or start again, on its own data) the shard's node ``name``: with a standby, the
        lease decides whether it leads or follows; a node killed earlier rejoins as the standby."""
        data_dir = self.config.state_dir / name
        args = ["--port", str(port), "--metrics-port", str(metrics_port), "--host", HOST]
        shard, node_number = NODE_SHARDS[name]
        if self.config.standby:
            args += ["--shard", shard, "--lease-table", self.lease_table(), "--node-id", name]
            args += ["--ack-after", "replica", "--replication-port", "0"]
            args += ["--lease-ttl-ms", str(self.config.lease_ttl_ms)]
        market_data = self.stack.stream("MarketDataStream")
        if market_data:
            args += ["--kinesis-stream", market_data]
        # The drop copy: the one source of trade.executed.v1, so of the ledger (ExecutionsFunction).
        executions = self.stack.stream("ExecutionsStream")
        if executions:
            args += ["--executions-stream", executions, "--node-number", str(node_number)]
        args += ["--auth-keys-file", str(self._session_keys_file())]
        env = {
            "AWS_ENDPOINT_URL": self.endpoints.aws,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        earlier = self.nodes.pop(name, None)
        if earlier is not None:
            earlier.__exit__(None, None, None)  # a node that was killed: its pipe, a follower left
        node = NodeProcess.start(data_dir, *args, log_path=self.config.state_dir / f"{name}.log", env=env)
        self.nodes[name] = node
        return node

    def _session_keys_file(self) -> Path:
        """The node's session keys: the template's key secrets as provisioned (the functions read
        theirs by ARN, as on AWS), in a file only this user can read."""
        secretsmanager = self.client("secretsmanager")
        keys: list[SessionKey] = []
        for stack in self.stack.all_stacks():
            for logical_id in ("MatchingOrdersKeySecret", "MatchingAdminKeySecret"):
                arn = stack.refs.get(logical_id)
                if arn:
                    keys += load_secret_keys([str(arn)], secretsmanager)
        if not keys:
            raise RuntimeError("the template provisioned no matching-port session keys")
        path = self.config.state_dir / "session-keys.json"
        write_key_file(path, keys)
        return path

    def stop(self) -> None:
        # The standby first: a primary stopping first would hand it the shard on the way out.
        for name in reversed(list(self.nodes)):
            node = self.nodes.pop(name)
            if node.process.poll() is None:
                node.terminate()
            node.__exit__(None, None, None)  # its follower, should it outlive it
