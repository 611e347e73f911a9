"""The gateway benchmark: its settings (bad ones refused), its summary and ratios, and a small run
end to end that writes its report (no timing asserts)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest

from bench.gateway_bench import Settings, main, settings_from, summarise, table

ROOT = Path(__file__).resolve().parents[3]


def test_settings_default_and_from_the_environment(tmp_path: Path) -> None:
    assert settings_from({}) == Settings()
    assert Settings().clients == (1, 100, 1000)
    env = {
        "BENCH_GATEWAY_CLIENTS": "1,10",
        "BENCH_GATEWAY_RATE": "3000",
        "BENCH_GATEWAY_SECONDS": "2.5",
        "BENCH_GATEWAY_ROUNDS": "3",
        "BENCH_GATEWAY_SHARDS": "2",
        "BENCH_GATEWAY_POLL_S": "0.05",
        "BENCH_GATEWAY_MAX_QUEUE": "100",
        "BENCH_OUT": str(tmp_path / "g.json"),
    }
    assert settings_from(env) == Settings((1, 10), 3000, 2.5, 3, 2, 0.05, 100, tmp_path / "g.json")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BENCH_GATEWAY_CLIENTS", "1,many", "comma-separated counts"),
        ("BENCH_GATEWAY_CLIENTS", "0,10", "at least 1"),
        ("BENCH_GATEWAY_RATE", "fast", "is not a number"),
        ("BENCH_GATEWAY_RATE", "0", "must be at least 1"),
        ("BENCH_GATEWAY_SECONDS", "0.1", "must be at least 0.5"),
        ("BENCH_GATEWAY_ROUNDS", "1.5", "is not a number"),
        ("BENCH_GATEWAY_MAX_QUEUE", "5", "must be at least 10"),
    ],
)
def test_bad_settings_are_refused_with_exit_2_naming_them(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        settings_from({name: value})
    assert name in str(refused.value)
    err = io.StringIO()
    with redirect_stderr(err):
        assert main([], {name: value}) == 2
    assert name in err.getvalue()


def _run(mode: str, clients: int, latency_ms: list[float], messages: int, cpu: float) -> dict[str, Any]:
    return {
        "mode": mode, "clients": clients, "orders": 1000, "drive_s": 1.0, "wall_s": 2.0,
        "server_cpu_s": cpu, "clients_cpu_s": 0.5, "stream_updates": 400,
        "messages": {"trade": messages // 2, "book_update": messages - messages // 2},
        "latency_ns": [int(ms * 1e6) for ms in latency_ms], "closed": {"1000": clients - 1, "4008": 1},
    }  # fmt: skip


def test_summary_rows_and_the_gateways_ratios_to_the_floor() -> None:
    runs = [
        _run("floor", 10, [1.0] * 98 + [5.0, 9.0], 2000, 0.2),
        _run("gateway", 10, [3.0] * 98 + [8.0, 20.0], 1000, 0.4),
        _run("gateway", 10, [3.0] * 98 + [8.0, 20.0], 1000, 0.4),
    ]
    summary = summarise(runs)
    floor, gateway = summary["rows"]["floor/10"], summary["rows"]["gateway/10"]
    assert (floor["rounds"], gateway["rounds"]) == (1, 2)
    assert (floor["delivered_per_s"], gateway["delivered_per_s"]) == (1000, 500)
    assert (floor["orders_per_s"], floor["stream_updates_per_s"]) == (1000, 200)
    assert (floor["trade_p50_ms"], floor["trade_p99_ms"]) == (1.0, 5.0)
    assert (gateway["trade_p50_ms"], gateway["trade_p99_ms"], gateway["latency_samples"]) == (3.0, 8.0, 200)
    assert (floor["server_cpu_us_per_message"], gateway["server_cpu_us_per_message"]) == (100.0, 400.0)
    assert floor["messages_per_server_cpu_s"] == 10_000
    assert (floor["closed_early"], gateway["closed_early"]) == (1, 2)
    assert summary["gateway_over_floor"]["10"] == {
        "delivered_per_s": 0.5, "trade_p50": 3.0, "trade_p99": 1.6, "server_cpu_per_message": 4.0,
        "added_p50_ms": 2.0, "added_p99_ms": 3.0,
    }  # fmt: skip
    printed = table(summary)
    assert any(line.split()[:3] == ["gateway", "10", "1000"] for line in printed.splitlines())
    assert "N=   10: 0.5x  3.0x  1.6x  4.0x  +2.0 / +3.0 ms" in printed


def test_a_small_run_end_to_end_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    env = {
        **os.environ,
        "BENCH_GATEWAY_CLIENTS": "2",
        "BENCH_GATEWAY_ROUNDS": "1",
        "BENCH_GATEWAY_SECONDS": "0.5",
        "BENCH_GATEWAY_RATE": "300",
        "BENCH_OUT": str(out),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gateway_bench.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert set(report["rows"]) == {"floor/2", "gateway/2"}
    for row in report["rows"].values():
        assert row["trades_delivered"] > 0  # every client got its symbol's trades through the stream
        assert row["latency_samples"] == row["trades_delivered"]  # two clients: both measured
        assert row["closed_early"] == 0
    assert set(report["gateway_over_floor"]["2"]) >= {"added_p50_ms", "added_p99_ms", "delivered_per_s"}
    assert "gateway / floor" in done.stdout
