"""The engine benchmark runs end to end on a small workload and writes its report (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENGINES = ("meridian", "meridian_batched", "liquibook", "lightmatchingengine", "floor")
FIELDS = {"ops_per_s", "wall_ns_per_op", "cpu_ns_per_op", "p50_us", "p99_us", "p999_us", "trades"}


def test_engine_bench_writes_its_report_and_the_engines_trade_alike(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    env = {**os.environ, "BENCH_N": "3000", "BENCH_ROUNDS": "1", "BENCH_OUT": str(out)}
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
    report = json.loads(out.read_text())
    assert report["workload"]["ops"] == 3000
    assert set(report["engines"]) == set(ENGINES)
    for name in ENGINES:
        row = report["engines"][name]
        assert set(row) >= FIELDS, name
        assert row["ops_per_s"] > 0
        assert 0 < row["p50_us"] <= row["p99_us"] <= row["p999_us"]
    # Every engine made the floor's trades, in the floor's order (maker, taker, price, quantity).
    agreement = report["agreement"]
    assert set(agreement["same"]) == set(ENGINES) - {"floor"}, agreement["differ"]
    assert agreement["floor_trades"] > 0
    assert {report["engines"][name]["trades"] for name in ENGINES} == {agreement["floor_trades"]}
    assert set(report["ratios"]) >= {"meridian/floor", "meridian_batched/floor", "meridian/liquibook"}
