"""The wire benchmark runs end to end on a short workload and writes its report (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


def test_wire_bench_interleaves_floors_and_orders_and_labels_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "wire.json"
    env = {
        **os.environ,
        "BENCH_WIRE_SECONDS": "0.4",
        "BENCH_WIRE_RATE": "2000",
        "BENCH_WIRE_ORDERS": "2000",
        "BENCH_WIRE_ROUNDS": "2",
        "BENCH_WIRE_DIR": str(tmp_path),
        "BENCH_WIRE_NODE_ARGS": "--ack-after replica;",  # a replicated pair, then a lone node
        "BENCH_OUT": str(out),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wire_bench.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["journal"]["filesystem"] not in ("", "unknown")
    assert report["journal"]["verdict"] in result.stdout
    assert [c["node_args"] for c in report["node_configs"]] == ["--ack-after replica", ""]
    for config in report["node_configs"]:
        paced, piped = config["paced"], config["pipelined"]
        for kind in ("echo", "heartbeat", "orders"):
            assert paced[kind]["count"] == 800  # 2000/s for 0.4 s, over two rounds
            assert paced[kind]["configured_per_s"] == 2000
            assert paced[kind]["achieved_per_s"] > 0
            assert paced[kind]["latency_from"].startswith("scheduled send")
            assert piped[kind]["count"] == 2000
            assert piped[kind]["server_cpu_us_per_request"] > 0
        assert paced["orders"]["journal_commits"] > 0  # orders journal; the floors do not
        assert "journal_commits" not in paced["heartbeat"]
        assert set(paced["orders_vs_echo"]) == {"p50", "p99", "achieved_per_s", "server_cpu_per_request"}
