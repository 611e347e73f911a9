"""The local platform's settings, its endpoints, and what its servers see of it.

``PlatformConfig`` is what ``make run`` reads from the environment (ports, the standby, shards, the
state directory); ``Endpoints`` is what a running platform serves, written to its state directory
for ``make demo``. The REST API and the streaming gateway are started by the platform and use it
through ``PlatformView`` only, so neither imports the platform.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from meridian_local.cloud.sam_template import REPO_ROOT, ROOT_TEMPLATE
from meridian_local.cloud.stack_model import LocalFunction

HOST = "127.0.0.1"  # every local server listens on loopback only
Say = Callable[[str], None]


@dataclass
class PlatformConfig:
    state_dir: Path = Path(os.environ.get("MERIDIAN_STATE_DIR", str(REPO_ROOT / ".local-platform")))
    api_port: int = int(os.environ.get("MERIDIAN_API_PORT", "3000"))
    aws_port: int = int(os.environ.get("MERIDIAN_AWS_PORT", "4566"))
    node_port: int = int(os.environ.get("MERIDIAN_NODE_PORT", "9001"))
    metrics_port: int = int(os.environ.get("MERIDIAN_METRICS_PORT", "9101"))
    # The shard's standby (MERIDIAN_STANDBY=0: one node, no replication, as before shards).
    standby: bool = os.environ.get("MERIDIAN_STANDBY", "1") != "0"
    standby_port: int = int(os.environ.get("MERIDIAN_STANDBY_PORT", "9002"))
    standby_metrics_port: int = int(os.environ.get("MERIDIAN_STANDBY_METRICS_PORT", "9102"))
    lease_ttl_ms: int = int(os.environ.get("MERIDIAN_LEASE_TTL_MS", "2000"))  # the template's default
    shards: int = int(os.environ.get("MERIDIAN_SHARDS", "1"))  # 2: MSFT and BTCUSD on a shard of their own
    gateway_port: int = int(os.environ.get("MERIDIAN_GATEWAY_PORT", "8765"))
    database_url: str = os.environ.get("DATABASE_URL", "")
    template: Path = ROOT_TEMPLATE
    environment: str = "dev"
    # Eight: one per concurrent client of make bench-local (a Lambda container per request in flight).
    api_workers: int = int(os.environ.get("MERIDIAN_API_WORKERS", "8"))
    prometheus_port: int = int(os.environ.get("MERIDIAN_PROMETHEUS_PORT", "9090"))


@dataclass
class Endpoints:
    aws: str = ""
    api: str = ""
    database_url: str = ""
    node: str = ""  # the shard's first primary
    metrics: str = ""
    standby: str = ""  # its hot standby (empty with MERIDIAN_STANDBY=0)
    standby_metrics: str = ""
    routes: str = ""  # what the functions route by: the shard's nodes, host:port,host:port
    shards: dict[str, str] = field(default_factory=dict)  # every shard's nodes (A: the default)
    gateway: str = ""
    logs: str = ""  # the folder of the components' log files
    prometheus: str = ""  # when the prometheus binary is installed


class PlatformView(Protocol):
    """What the platform's servers (the REST API, the streaming gateway) use of the platform."""

    @property
    def config(self) -> PlatformConfig: ...

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def say(self) -> Say: ...

    @property
    def credentials_file(self) -> Path: ...

    @property
    def logs_dir(self) -> Path: ...

    def client(self, service: str) -> Any: ...

    def function(self, logical_id: str) -> LocalFunction: ...

    def child_environment(self) -> dict[str, str]: ...
