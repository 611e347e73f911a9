"""The recovery benchmark runs end to end on a small workload and writes its report (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_recovery_bench_recovers_and_memory_stays_flat_across_days(tmp_path: Path) -> None:
    out = tmp_path / "recovery.json"
    env = {
        **os.environ,
        "BENCH_RECOVERY_RECORDS": "5000",
        "BENCH_LIVE": "500",
        "BENCH_DAYS": "4",
        "BENCH_DAY_ORDERS": "5000",
        "BENCH_OUT": str(out),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "recovery_bench.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["recovery"]["records"] == 5000
    assert report["recovery"]["records_per_s"] > 0
    assert report["memory_per_live_order"]["bytes_per_live_order"] > 0
    history = report["history"]
    assert [row["live_orders"] for row in history] == [500] * 4
    assert [row["client_order_ids_after_end_of_day"] for row in history] == [500] * 4
    # The same day's work holds the same memory whatever came before: nothing of history is kept.
    assert len({row["engine_bytes_end_of_day"] for row in history}) == 1
    assert report["engine_memory_last_day_over_first"] == 1.0
