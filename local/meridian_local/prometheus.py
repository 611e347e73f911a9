"""Prometheus for ``make run``, when the ``prometheus`` binary is installed (Debian's package).

The repository's configuration (observability/prometheus/prometheus.yml: its global settings and
alert rules, alerts.yml) with the scrape targets of this machine instead of the fleet's discovery:
the matching shard's nodes' metrics addresses. Prometheus then evaluates the same alert rules as in AWS
against the local node, at http://127.0.0.1:<MERIDIAN_PROMETHEUS_PORT, default 9090>.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse

from meridian_local.cloud.sam_template import REPO_ROOT

CONFIG = REPO_ROOT / "observability" / "prometheus" / "prometheus.yml"
RULES = REPO_ROOT / "observability" / "prometheus" / "alerts.yml"
READY = "Server is ready to receive web requests"


def binary() -> str | None:
    return shutil.which("prometheus")


def local_config(*node_metrics: str, environment: str = "local") -> dict[str, Any]:
    """The repository's configuration, scraping ``node_metrics`` (``host:port`` each) as the fleet."""
    config: dict[str, Any] = yaml_parse(CONFIG.read_text())
    config["global"]["external_labels"] = {"environment": environment}
    config["rule_files"] = [str(RULES)]
    config["scrape_configs"] = [
        {
            "job_name": "matching-nodes",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": list(node_metrics)}],
        },
    ]
    return config


def write(folder: Path, *node_metrics: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(json.dumps(local_config(*node_metrics), indent=2))  # JSON is YAML to Prometheus
    return path
