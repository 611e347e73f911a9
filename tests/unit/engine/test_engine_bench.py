"""The engine benchmark runs end to end on a small workload and writes its report (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENGINES = ("meridian", "liquibook", "lightmatchingengine", "floor")
FIELDS = {"ops_per_s", "p50_us", "p99_us", "p999_us", "trades"}


def test_engine_bench_writes_its_report_and_the_engines_agree(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    env = {**os.environ, "BENCH_N": "2000", "BENCH_OUT": str(out), "BENCH_MODE": "interpreted"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "engine_bench.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trade counts agree" in result.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "interpreted"
    assert report["workload"]["ops"] == 2000
    assert set(report["engines"]) == set(ENGINES)
    for name in ENGINES:
        row = report["engines"][name]
        assert set(row) >= FIELDS, name
        assert row["ops_per_s"] > 0
        assert 0 < row["p50_us"] <= row["p99_us"] <= row["p999_us"]
    trades = {report["engines"][name]["trades"] for name in ("meridian", "liquibook", "floor")}
    assert len(trades) == 1
    assert trades.pop() > 0
