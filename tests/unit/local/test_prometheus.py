"""Prometheus: the alert rules read metrics the node exposes; make run's configuration scrapes the node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse

from meridian_hotpath.metrics import NodeMetrics
from meridian_local import prometheus

PROMQL_WORDS = {"rate", "sum", "by", "on", "increase", "histogram_quantile", "le", "instance", "up"}


def node_metric_names() -> set[str]:
    metrics = NodeMetrics()
    metrics.registry.register(metrics)
    text = metrics.exposition().decode()
    names = set(re.findall(r"^# TYPE (\S+) (\w+)", text, re.M))
    exposed = {name for name, _ in names}
    exposed |= {f"{name}_bucket" for name, kind in names if kind == "histogram"}
    return exposed


def test_every_alert_reads_metrics_the_node_exposes() -> None:
    rules = yaml_parse(prometheus.RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"MeridianMatchingNodeDown", "MeridianOrderLatencyP99High"}
    exposed = node_metric_names()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        names = set(re.findall(r"\b([a-z_]+)(?=\{|\[)", rule["expr"])) - PROMQL_WORDS
        assert names <= exposed, (rule["alert"], names - exposed)


def test_make_runs_configuration_is_the_repositorys_scraping_the_local_node(tmp_path: Path) -> None:
    written = json.loads(prometheus.write(tmp_path, "127.0.0.1:9101").read_text())
    repository = yaml_parse(prometheus.CONFIG.read_text())
    assert written["global"]["scrape_interval"] == repository["global"]["scrape_interval"]
    assert written["rule_files"] == [str(prometheus.RULES)]
    (job,) = written["scrape_configs"]
    assert (job["job_name"], job["static_configs"]) == ("matching-nodes", [{"targets": ["127.0.0.1:9101"]}])
    assert repository["rule_files"] == ["alerts.yml"]  # the task writes alerts.yml beside it


def test_promtool_accepts_the_rules_and_both_configurations(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    config = prometheus.write(tmp_path, "127.0.0.1:9101")
    for args in (["check", "rules", str(prometheus.RULES)], ["check", "config", str(config)]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
