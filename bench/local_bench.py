"""Local platform throughput: concurrent clients placing orders through the running ``make run``.

``BENCH_CLIENTS`` clients (default 8) each place ``BENCH_ORDERS`` orders (default 40) through the
REST API at once, as traders alice and bob (crossing prices: about half the orders trade), and the
floor, the gateway's unauthenticated ``GET /ping`` (HTTP and the gateway, no function, no AWS), is
measured by the same clients in rounds interleaved with the orders'. Reported: orders/s, latency
percentiles (nearest rank), CPU per order (this process's, and the platform's processes' from
``/proc``, in all and per component: the AWS endpoint, the API workers, delivery, each node and
its follower, the embedded PostgreSQL apart from the total), and the ratios to the floor. Then it
waits for the post-trade pipeline and checks that every fill the API returned reached the ledger
exactly once (by execution id).

Environment: ``MERIDIAN_STATE_DIR`` (the running platform's, default ``.local-platform``),
``BENCH_CLIENTS``, ``BENCH_ORDERS``, ``BENCH_ROUNDS`` (interleaved rounds, default 4),
``BENCH_WARMUP`` (orders per client placed first and reported apart, default 2: the first requests
of each API worker open its AWS clients and database connection, as a container's first do),
``BENCH_LEDGER_WAIT_S`` (default 60), ``BENCH_OUT`` (default bench/results/local.json). Exits 1 when a
fill is missing from the ledger (or there twice), 2 when no platform is running.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meridian.stats import nearest_rank  # noqa: E402
from meridian_client import ApiError, MeridianClient  # noqa: E402

STATE = Path(os.environ.get("MERIDIAN_STATE_DIR", str(ROOT / ".local-platform")))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ORDERS = int(os.environ.get("BENCH_ORDERS", "40"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
LEDGER_WAIT_S = float(os.environ.get("BENCH_LEDGER_WAIT_S", "60"))
OUT = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "local.json")))
RUN = uuid.uuid4().hex[:6]  # client order ids are this run's own: a second run places new orders


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    refused: dict[str, int] = field(default_factory=dict)
    executions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def platform_processes(endpoints: dict[str, Any]) -> list[psutil.Process]:
    """The running platform's processes: the one holding run.lock and every process below it."""
    lock = STATE / "run.lock"
    try:
        pid = int(lock.read_text().split()[0])
        root = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.Error):
        return []
    return [root, *root.children(recursive=True)]


def postgres_processes() -> list[psutil.Process]:
    """The embedded PostgreSQL's server and its backends (pgserver starts it outside the platform's
    process tree); none when the platform uses ``DATABASE_URL``."""
    try:
        pid = int((STATE / "pgdata" / "postmaster.pid").read_text().split()[0])
        server = psutil.Process(pid)
        return [server, *server.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def component(process: psutil.Process) -> str:
    """What a platform process stands for, from its command line."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "gone"
    line = " ".join(argv)
    if "meridian_hotpath" in line:
        data_dir = argv[argv.index("--data-dir") + 1] if "--data-dir" in argv else "node"
        role = "follower" if " follow " in f" {line} " else "node"
        return f"{role} {Path(data_dir).name}"
    for marker, name in (
        ("moto_server", "aws-endpoint"),
        ("api_worker", "api-workers"),
        ("delivery.service", "delivery"),
        ("meridian_local run", "platform+gateway"),
        ("prometheus", "prometheus"),
        ("postgres", "postgres"),
    ):
        if marker in line:
            return name
    return Path(argv[0]).name if argv else "?"


def cpu_by_component(processes: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) so far, summed per component."""
    totals: dict[str, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        name = component(process)
        totals[name] = totals.get(name, 0.0) + times.user + times.system
    return totals


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(cpu_by_component(processes).values())


def client_for(api: str, user: str) -> MeridianClient:
    keys = json.loads((STATE / "credentials.json").read_text())["users"][user]
    return MeridianClient(api, Credentials(keys["access_key"], keys["secret"]), session=requests.Session())


def run_clients(work: Callable[[int, int], None], clients: int, per_client: int) -> float:
    """``work(client, i)`` for every client at once; the wall time until the last one finishes."""
    start = threading.Barrier(clients + 1)

    def loop(client: int) -> None:
        start.wait()
        for i in range(per_client):
            work(client, i)

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def orders_round(api: str, run: Run, round_no: int, per_client: int) -> None:
    traders = [client_for(api, "alice" if c % 2 == 0 else "bob") for c in range(CLIENTS)]

    def place(client: int, i: int) -> None:
        buyer = client % 2 == 0
        price = f"{190 + ((client * 7 + i) % 5 - 2) * 0.01:.2f}"
        began = time.perf_counter()
        try:
            side = "BUY" if buyer else "SELL"
            coid = f"{RUN}r{round_no}c{client}o{i}"
            order = traders[client].submit_order("AAPL", side, 1 + i % 3, price, client_order_id=coid)
        except ApiError as exc:
            with run.lock:
                run.refused[exc.code] = run.refused.get(exc.code, 0) + 1
            return
        elapsed = (time.perf_counter() - began) * 1000
        with run.lock:
            run.latencies_ms.append(elapsed)
            run.executions += [f.execution_id for f in order.fills or []]

    run.wall_s += run_clients(place, CLIENTS, per_client)


def floor_round(api: str, run: Run, per_client: int) -> None:
    sessions = [requests.Session() for _ in range(CLIENTS)]

    def ping(client: int, i: int) -> None:
        began = time.perf_counter()
        answer = sessions[client].get(f"{api}/ping", timeout=10)
        answer.raise_for_status()
        with run.lock:
            run.latencies_ms.append((time.perf_counter() - began) * 1000)

    run.wall_s += run_clients(ping, CLIENTS, per_client)


def ledger_check(database_url: str, executions: list[str]) -> dict[str, Any]:
    """Wait until every returned execution is in the ledger; count missing and doubled ones."""
    wanted = sorted(set(executions))
    deadline = time.monotonic() + LEDGER_WAIT_S
    began = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT execution_id, count(*) FROM trades WHERE execution_id = ANY(%s)"
                " GROUP BY execution_id",
                (wanted,),
            ).fetchall()
            counts = {r[0]: int(r[1]) for r in rows}
            missing = [e for e in wanted if e not in counts]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    return {
        "fills_returned": len(executions),
        "executions": len(wanted),
        "in_ledger": len(counts),
        "missing": len(missing),
        "more_than_once": sum(1 for c in counts.values() if c != 1),
        "returned_twice_by_the_api": len(executions) - len(wanted) if len(executions) > len(wanted) else 0,
        "ledger_wait_s": round(time.monotonic() - began, 2),
    }


def summary(run: Run, orders: int, cpu_bench_s: float, cpu_platform_s: float) -> dict[str, Any]:
    lat = sorted(run.latencies_ms)
    return {
        "operations": len(lat),
        "per_s": round(len(lat) / run.wall_s, 1) if run.wall_s else 0.0,
        "p50_ms": round(nearest_rank(lat, 0.50), 1) if lat else None,
        "p99_ms": round(nearest_rank(lat, 0.99), 1) if lat else None,
        "max_ms": round(lat[-1], 1) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "cpu_ms_per_op_bench": round(cpu_bench_s * 1000 / max(orders, 1), 2),
        "cpu_ms_per_op_platform": round(cpu_platform_s * 1000 / max(orders, 1), 2),
        "refused": run.refused,
    }


def main() -> int:
    try:
        endpoints = json.loads((STATE / "endpoints.json").read_text())
    except FileNotFoundError:
        missing = STATE / "endpoints.json"
        print(f"no running platform: {missing} is missing (start `make run`)", file=sys.stderr)
        return 2
    api, processes = endpoints["api"], platform_processes(endpoints)
    by_component: dict[str, float] = {}
    orders, floor, warmup = Run(), Run(), Run()
    if WARMUP:
        orders_round(api, warmup, -1, WARMUP)
    per_round = max(1, ORDERS // ROUNDS)
    postgres = postgres_processes()  # after the warm-up, which opens the functions' connections
    cpu = {"orders": [0.0, 0.0], "floor": [0.0, 0.0]}
    for round_no in range(ROUNDS):
        for name in ("orders", "floor"):
            bench0, platform0 = time.process_time(), cpu_seconds(processes)
            parts0 = cpu_by_component([*processes, *postgres])
            if name == "orders":
                orders_round(api, orders, round_no, per_round)
            else:
                floor_round(api, floor, per_round)
            cpu[name][0] += time.process_time() - bench0
            cpu[name][1] += cpu_seconds(processes) - platform0
            if name == "orders":
                for part, seconds in cpu_by_component([*processes, *postgres]).items():
                    by_component[part] = by_component.get(part, 0.0) + seconds - parts0.get(part, 0.0)
    post = summary(orders, len(orders.latencies_ms), *cpu["orders"])
    placed = max(len(orders.latencies_ms), 1)
    post["cpu_ms_per_op_by_component"] = {
        part: round(seconds * 1000 / placed, 2)
        for part, seconds in sorted(by_component.items(), key=lambda kv: -kv[1])
    }
    ping = summary(floor, len(floor.latencies_ms), *cpu["floor"])
    ledger = ledger_check(endpoints["database_url"], orders.executions + warmup.executions)
    goal_met = post["per_s"] >= 50 and (post["p99_ms"] or 1e9) < 500
    report: dict[str, Any] = {
        "benchmark": "local",
        "clients": CLIENTS,
        "orders_per_client": per_round * ROUNDS,
        "rounds": ROUNDS,
        "platform_processes": len(processes),
        "percentile": "nearest rank (meridian.stats.nearest_rank)",
        "warmup_post_orders": summary(warmup, len(warmup.latencies_ms), 0.0, 0.0),
        "post_orders": post,
        "floor_get_ping": ping,
        "ledger": ledger,
        "goal": {"orders_per_s_at_least": 50, "p99_ms_below": 500, "met": goal_met},
        "ratios": {
            "p50_to_floor": round(post["p50_ms"] / ping["p50_ms"], 1) if ping["p50_ms"] else None,
            "per_s_to_floor": round(post["per_s"] / ping["per_s"], 3) if ping["per_s"] else None,
        },
    }
    print(f"local platform: {CLIENTS} clients x {per_round * ROUNDS} orders, {ROUNDS} interleaved rounds")
    columns = ("ops", "per s", "p50 ms", "p99 ms", "max ms", "cpu ms/op bench", "platform")
    widths = (5, 7, 8, 8, 8, 16, 9)
    print(f"{'':16} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    rows = [("POST /orders", post), ("floor GET /ping", ping)]
    if WARMUP:
        rows.append(("warm-up (apart)", report["warmup_post_orders"]))
    for name, row in rows:
        print(
            f"{name:16} {row['operations']:>5} {row['per_s']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['max_ms']:>8} {row['cpu_ms_per_op_bench']:>16} {row['cpu_ms_per_op_platform']:>9}"
        )
    parts = post["cpu_ms_per_op_by_component"].items()
    print("CPU ms per order: " + ", ".join(f"{part} {ms}" for part, ms in parts))
    if post["refused"]:
        print(f"refused: {post['refused']}")
    print(
        f"ledger: {ledger['executions']} executions returned, {ledger['in_ledger']} in the ledger, "
        f"{ledger['missing']} missing, {ledger['more_than_once']} more than once "
        f"(waited {ledger['ledger_wait_s']} s)"
    )
    print(f"goal (>= 50 orders/s, p99 < 500 ms): {'met' if goal_met else 'NOT met'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    ok = ledger["missing"] == 0 and ledger["more_than_once"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
