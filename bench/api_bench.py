"""Order API benchmark: POST /orders latency through the real handler, and cold import per function.

1. A live matching node (``python -m meridian_hotpath serve`` on loopback) and moto in-process for
   DynamoDB and EventBridge; ``BENCH_API_N`` (default 500: moto's in-process DynamoDB slows as its
   tables grow, so runs stay short) POST /orders through the handler after a
   warm-up, each timed on its own. Baseline in the same run: the same requests against the engine
   in-process (no socket), which shows what the network hop to the node costs.
2. Each function folder under functions/: a fresh ``python -c "import app"`` subprocess per run,
   timing the import inside the interpreter (median of ``BENCH_IMPORT_RUNS``, default 5), started
   as Lambda starts it (Lambda environment variables, tracing on), against the function's deployed
   packages (``lambda_site``) and, for comparison, against the dev venv. Baseline
   in the same rounds, interleaved: the floor of the stack each function requires,
   ``bench/cold_import_floor`` (a one-route function of the shared stack alone) or, for a function
   whose import loads psycopg (the ledger's driver, used by each of its invocations),
   ``bench/cold_import_floor_db`` (the same and psycopg). Goal: each function <= 1.10x its floor.

3. AWS round trips per route (``tests.order_path_scenarios``, ``route_timing``): each
   route's sequential AWS round trips (a botocore hook on every client: calls made concurrently
   count once), split into before and after the matching node (live, as in 1), and its modelled
   latency: the handler's wall time with every AWS call padded to ``BENCH_API_DELAY_MS`` (default
   4: DynamoDB in a region) and each wait on AWS counted as exactly that delay, so moto's own speed
   does not count. Floor in the same run, interleaved: the same route with the stores in memory
   (no AWS call at all). Goal: POST /orders at most 4 round trips, p50 <= floor + 4 x the delay.
   ``BENCH_API_ROUTE_N`` (default 100) requests per route after a warm-up; ``--routes`` runs only
   this section (bench/results/api_round_trips.json).

Writes bench/results/api.json (post_orders_p50_ms, post_orders_p99_ms, cold_import_ms per function,
round_trips per route).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.json"
ROUTE_RESULTS = ROOT / "bench" / "results" / "api_round_trips.json"
IMPORT_TARGET_VS_FLOOR = 1.10  # each function against the floor of the stack it requires
FLOOR = ROOT / "bench" / "cold_import_floor"  # the shared stack alone: Powertools, pydantic, boto3
DB_FLOOR = ROOT / "bench" / "cold_import_floor_db"  # the shared stack and psycopg: the ledger functions'
FLOORS = (FLOOR.name, DB_FLOOR.name)
_IMPORT_PROBE = (
    "import sys, time; t = time.perf_counter(); import app; "
    "print((time.perf_counter() - t) * 1000, 'psycopg' in sys.modules)"
)

for name, value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402
from orders_api import aws, services  # noqa: E402
from orders_api.config import Settings  # noqa: E402
from orders_api.dal.hotpath import HotpathGateway, MatchingGateway  # noqa: E402

from meridian.routing import Router, RouteTable, StaticRoutes  # noqa: E402
from meridian.stats import nearest_rank  # noqa: E402
from meridian_hotpath.process import NodeProcess  # noqa: E402
from meridian_local.apigateway.apigw_events import proxy_event  # noqa: E402
from meridian_local.apigateway.order_function import load_handler  # noqa: E402
from meridian_local.delivery.lambda_events import LocalLambdaContext  # noqa: E402
from tests import route_timing  # noqa: E402
from tests.orders_api_fixtures import (  # noqa: E402
    EngineGateway,
    local_services,
    role_session_arn,
    seed_order_api,
)
from tests.route_timing import World  # noqa: E402

TRADERS = [(role_session_arn("meridian-trader", f"bench{i}"), f"BENCH-{i}") for i in range(2)]


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank), in the samples' unit."""
    return nearest_rank(sorted(samples), pct / 100)


def percentile_ms(samples: list[float], q: float) -> float:
    """Nearest rank (``meridian.stats``, as every benchmark and the node's metrics use), in ms."""
    return round(nearest_rank(sorted(samples), q), 3)


def order_events(n: int, run: str) -> list[dict[str, Any]]:
    """Alternating buyers and sellers around 190.00: about half the orders trade."""
    events = []
    for i in range(n):
        principal, _ = TRADERS[i % 2]
        side = "BUY" if i % 2 == 0 else "SELL"
        price = f"{190 + (i % 5 - 2) * 0.05:.2f}"
        body = {
            "symbol": "AAPL",
            "side": side,
            "quantity": 1 + i % 7,
            "price": price,
            "client_order_id": f"{run}-{i}",
        }
        headers = {"Content-Type": "application/json"}
        events.append(
            proxy_event("POST", "/orders", user_arn=principal, body=json.dumps(body), headers=headers)
        )
    return events


def time_orders(handler: Callable[..., dict[str, Any]], events: list[dict[str, Any]]) -> list[float]:
    """Time each call; the EMF metric line each invocation prints goes to /dev/null, as it costs."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return _time_orders(handler, events)


def _time_orders(handler: Callable[..., dict[str, Any]], events: list[dict[str, Any]]) -> list[float]:
    samples = []
    for event in events:
        started = time.perf_counter_ns()
        response = handler(event, LocalLambdaContext(function_name="bench"))
        samples.append((time.perf_counter_ns() - started) / 1e6)
        if response["statusCode"] >= 500:
            raise RuntimeError(f"POST /orders failed: {response['body']}")
    return samples


def latency(gateway: MatchingGateway, n: int, run: str) -> list[float]:
    settings = Settings(large_order_notional=10**9, default_max_open_orders=10**6, default_max_notional=10**9)
    aws.reset_clients()
    with mock_aws():
        clients = {name: aws.client(name) for name in ("dynamodb", "events", "sqs")}
        seed_order_api(clients, settings, [(principal, "trader", account) for principal, account in TRADERS])
        services.use(local_services(settings, clients, gateway))
        handler = load_handler()
        time_orders(handler, order_events(min(200, n), f"{run}w"))  # warm-up: connections, caches
        return time_orders(handler, order_events(n, run))


def route_summary(worlds: dict[str, World], delay_ms: float) -> dict[str, Any]:
    """Per route: the round trips of most requests (and of the slowest: a reference-data cache
    refresh adds one), the modelled latency and the floor's, and the goal for POST /orders."""
    summary: dict[str, Any] = {}
    for name, samples in worlds["modelled"].samples.items():
        floor = worlds["floor"].samples[name]
        typical = statistics.mode(samples.trips)
        worst = max(samples.trips, key=lambda t: (t.total, t.calls))
        modelled_p50 = percentile_ms(samples.modelled_ms, 0.50)
        floor_p50 = percentile_ms(floor.wall_ms, 0.50)
        summary[name] = {
            "round_trips": typical.total,
            "before_node": typical.before_node,
            "after_node": typical.after_node,
            "aws_calls": typical.calls,
            "round_trips_worst": worst.total,
            "share_with_more_round_trips": round(
                sum(t.total > typical.total for t in samples.trips) / len(samples.trips), 3
            ),
            "modelled_p50_ms": round(modelled_p50, 3),
            "modelled_p99_ms": round(percentile_ms(samples.modelled_ms, 0.99), 3),
            "padded_p50_ms": round(percentile_ms(samples.wall_ms, 0.50), 3),
            "modelled_cpu_ms_per_op": round(statistics.fmean(samples.cpu_ms), 3),
            "floor_p50_ms": round(floor_p50, 3),
            "floor_p99_ms": round(percentile_ms(floor.wall_ms, 0.99), 3),
            "floor_cpu_ms_per_op": round(statistics.fmean(floor.cpu_ms), 3),
            "modelled_minus_floor_in_delays": round((modelled_p50 - floor_p50) / delay_ms, 2),
        }
    post = summary.get("POST /orders")
    goal = None
    if post is not None:
        goal = {
            "round_trips_at_most": 4,
            "round_trips": post["round_trips"],
            "p50_at_most_ms": round(post["floor_p50_ms"] + 4 * delay_ms, 3),
            "p50_ms": post["modelled_p50_ms"],
        }
        goal["met"] = goal["round_trips"] <= 4 and goal["p50_ms"] <= goal["p50_at_most_ms"]
    slow = sum(c.slower_than_model for w in worlds.values() for s in w.samples.values() for c in s.calls)
    return {
        "delay_ms": delay_ms,
        "routes": summary,
        "post_orders_goal": goal,
        "calls_slower_than_delay": slow,
    }


def print_routes(summary: dict[str, Any]) -> None:
    delay = summary["delay_ms"]
    print("AWS round trips per route (sequential; concurrent calls count once). Modelled latency: the")
    print(f"handler's wall time with each wait on AWS (calls padded to {delay} ms) counted as {delay} ms;")
    print("padded: the wall time as measured (moto's own time included); floor: the same route, no AWS")
    head = f"{'route':<38}{'trips':>6}{'before':>7}{'after':>6}{'worst':>6}"
    print(
        f"{head}{'p50 ms':>9}{'padded':>8}{'floor':>8}{'(p50-floor)/delay':>19}{'cpu ms':>8}{'floor cpu':>10}"
    )
    for name, r in summary["routes"].items():
        print(
            f"{name:<38}{r['round_trips']:>6}{r['before_node']:>7}{r['after_node']:>6}{r['round_trips_worst']:>6}"
            f"{r['modelled_p50_ms']:>9}{r['padded_p50_ms']:>8}{r['floor_p50_ms']:>8}"
            f"{r['modelled_minus_floor_in_delays']:>19}"
            f"{r['modelled_cpu_ms_per_op']:>8}{r['floor_cpu_ms_per_op']:>10}"
        )
    goal = summary.get("post_orders_goal")
    if goal:
        verdict = "met" if goal["met"] else "NOT MET"
        print(
            f"goal POST /orders: {goal['round_trips']} round trips (<= 4), p50 {goal['p50_ms']} ms "
            f"(<= floor + 4 x {delay} = {goal['p50_at_most_ms']} ms): {verdict}"
        )
    print(f"AWS calls whose emulation took longer than {delay} ms: {summary['calls_slower_than_delay']}")


def lambda_site() -> Path | None:
    """The packages a deployed function imports, installed apart from the dev venv: the shared layer's
    requirements plus the boto3/botocore of the lock (the Lambda runtime provides boto3). The dev venv
    also holds awscrt, pyOpenSSL and the test tools, which botocore imports when present and the
    Lambda runtime does not have. Built once into build/lambda-site (pip, from the package index)."""
    requirements = ROOT / "layers" / "shared" / "requirements.txt"
    pins = [
        line
        for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if line.lower().startswith(("boto3==", "botocore=="))
    ]
    stamp = hashlib.sha256((requirements.read_text() + "\n".join(pins)).encode()).hexdigest()[:16]
    site = ROOT / "build" / "lambda-site" / stamp
    if (site / ".complete").exists():
        return site
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(site),
            "--only-binary=:all:",
            "-r",
            str(requirements),
            *pins,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(
            f"lambda package: pip failed, measuring the dev venv only: {done.stderr.strip()[-300:]}",
            file=sys.stderr,
        )
        return None
    (site / ".complete").touch()
    return site


def _probe(folder: Path, site: Path | None) -> list[str]:
    if site is None:  # the dev venv, site-packages and all
        return [sys.executable, "-c", _IMPORT_PROBE]
    # -I -S: no site-packages at all; the path is what the Lambda runtime puts there: the function,
    # the layers (/opt/python: shared, and the engine layer of the runbook tasks) and the packages.
    path = [str(folder), str(ROOT / "layers" / "shared"), str(ROOT / "hotpath"), str(site)]
    return [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {path!r}; {_IMPORT_PROBE}"]


class ColdImports(NamedTuple):
    median_ms: dict[str, float]  # per function folder, and the two floors
    uses_ledger: set[str]  # the functions whose import loads psycopg: held to the ledger floor

    @property
    def functions(self) -> dict[str, float]:
        """The functions' medians, without the floors'."""
        return {f: ms for f, ms in self.median_ms.items() if f not in FLOORS}

    def floor_of(self, function: str) -> str:
        """The floor of the stack the function requires: the shared stack, and psycopg if it
        loads it."""
        return DB_FLOOR.name if function in self.uses_ledger else FLOOR.name

    def vs_floor(self) -> dict[str, float]:
        """Each function's median over its required stack's median, measured in the same rounds."""
        m = self.median_ms
        return {
            f: round(ms / m[self.floor_of(f)], 2) for f, ms in self.functions.items() if self.floor_of(f) in m
        }


def cold_imports(runs: int, site: Path | None) -> ColdImports:
    """Median import time of each function's ``app`` in a fresh interpreter, as Lambda starts it:
    LAMBDA_TASK_ROOT set (the X-Ray SDK then uses its Lambda sampler) and tracing on. Interleaved:
    each round imports every function and both floors once, in turn, so a busy moment of the
    machine falls on all of them rather than on one."""
    functions = sorted(p for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
    folders = [*functions, FLOOR, DB_FLOOR]
    samples: dict[str, list[float]] = {folder.name: [] for folder in folders}
    uses_ledger: set[str] = set()
    failed: set[str] = set()
    for _ in range(runs):
        for folder in folders:
            if folder.name in failed:
                continue
            env = {
                **os.environ,
                "LAMBDA_TASK_ROOT": str(folder),
                "AWS_LAMBDA_FUNCTION_NAME": folder.name,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                "POWERTOOLS_TRACE_DISABLED": "false",
            }
            done = subprocess.run(
                _probe(folder, site), cwd=folder, env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(f"{folder.name}: import failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
                failed.add(folder.name)
                continue
            ms, loaded_psycopg = done.stdout.strip().splitlines()[-1].split()
            samples[folder.name].append(float(ms))
            if loaded_psycopg == "True" and folder in functions:
                uses_ledger.add(folder.name)
    medians = {name: round(statistics.median(values), 1) for name, values in samples.items() if values}
    return ColdImports(medians, uses_ledger)


def routes(node: NodeProcess) -> dict[str, Any]:
    """Section 3, against the live node; written to bench/results/api_round_trips.json."""
    route_n = int(os.environ.get("BENCH_API_ROUTE_N", "100"))
    delay_ms = float(os.environ.get("BENCH_API_DELAY_MS", "4"))
    router = Router(StaticRoutes(RouteTable(default=((node.host, node.port),))))
    summary = route_summary(route_timing.run(route_n, delay_ms, HotpathGateway(router)), delay_ms)
    summary["n"] = route_n
    ROUTE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    ROUTE_RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print_routes(summary)
    print(f"wrote {ROUTE_RESULTS.relative_to(ROOT)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """All three sections; ``--routes`` runs the round-trip section alone."""
    only_routes = "--routes" in (sys.argv[1:] if argv is None else argv)
    n = int(os.environ.get("BENCH_API_N", "500"))
    runs = int(os.environ.get("BENCH_IMPORT_RUNS", "5"))
    with tempfile.TemporaryDirectory() as data_dir:
        node = NodeProcess.start(Path(data_dir) / "node")
        try:
            route_result = routes(node)
            if only_routes:
                return 0
            router = Router(StaticRoutes(RouteTable(default=((node.host, node.port),))))
            live = latency(HotpathGateway(router), n, "live")
        finally:
            node.terminate()
    in_process = latency(EngineGateway(), n, "inproc")
    site = lambda_site()
    dev = cold_imports(runs, None)
    packaged = cold_imports(runs, site) if site is not None else None
    imports = packaged or dev
    ratios = imports.vs_floor()
    measured = imports.functions
    floor = imports.median_ms.get(FLOOR.name)
    db_floor = imports.median_ms.get(DB_FLOOR.name)
    post_orders_environment = {
        "handler": "functions/orders_api app.lambda_handler, in this process",
        "aws": "moto in-process (mock_aws): DynamoDB and EventBridge calls cost Python, not network",
        "node": "python -m meridian_hotpath serve on loopback, journal in the temp dir",
        "sample_size": n,
        "warm_up": min(200, n),
        "percentile": "nearest rank (meridian.stats.nearest_rank)",
    }
    baseline_environment = post_orders_environment | {"node": "none: the engine in-process, no socket"}
    result: dict[str, Any] = {
        "post_orders_n": n,
        "post_orders_p50_ms": percentile_ms(live, 0.50),
        "post_orders_p99_ms": percentile_ms(live, 0.99),
        "post_orders_environment": post_orders_environment,
        "baseline_in_process_engine_p50_ms": percentile_ms(in_process, 0.50),
        "baseline_in_process_engine_p99_ms": percentile_ms(in_process, 0.99),
        "baseline_in_process_engine_environment": baseline_environment,
        "cold_import_ms": measured,
        "cold_import_measured_in": "lambda package" if packaged else "dev venv",
        "cold_import_environment": {
            "how": "a fresh `python -c 'import app'` per run, timed inside the interpreter",
            "statistic": f"median of {runs} runs",
            "packages": "build/lambda-site (the layer's requirements, no dev venv)"
            if packaged
            else "dev venv",
            "floor": "each function against the floor of the stack it requires, measured in the same "
            "rounds: bench/cold_import_floor (Powertools, pydantic, boto3), or "
            "bench/cold_import_floor_db (the same and psycopg) for a function whose import loads psycopg",
        },
        "cold_import_floor_ms": floor,
        "cold_import_floor_db_ms": db_floor,
        "cold_import_floor_of": {f: imports.floor_of(f) for f in measured},
        "cold_import_vs_floor": ratios,
        "cold_import_vs_shared_floor": {f: round(ms / floor, 2) for f, ms in measured.items()}
        if floor
        else {},
        "cold_import_dev_venv_ms": dev.functions,
        "cold_import_target_vs_floor": IMPORT_TARGET_VS_FLOOR,
        "round_trips": route_result,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"POST /orders: {n} requests after {min(200, n)} warm-up; AWS = moto in-process; "
        "nearest-rank percentiles"
    )
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'POST /orders p50 (live node), ms':<44}{result['post_orders_p50_ms']:>12}")
    print(f"{'POST /orders p99 (live node), ms':<44}{result['post_orders_p99_ms']:>12}")
    print(f"{'baseline p50 (engine in-process), ms':<44}{result['baseline_in_process_engine_p50_ms']:>12}")
    print(f"{'baseline p99 (engine in-process), ms':<44}{result['baseline_in_process_engine_p99_ms']:>12}")
    print(
        f"cold import, ms (median of {runs}; {result['cold_import_measured_in']}); "
        f"x its floor (the shared stack: {floor} ms; with psycopg: {db_floor} ms, "
        "for the functions marked *); x the shared floor; dev venv"
    )
    for function, ms in measured.items():
        ratio = ratios.get(function, float("nan"))
        verdict = "ok" if ratio <= IMPORT_TARGET_VS_FLOOR else "OVER TARGET"
        shared = result["cold_import_vs_shared_floor"].get(function, float("nan"))
        mark = "*" if function in imports.uses_ledger else " "
        dev_ms = dev.median_ms.get(function, float("nan"))
        print(f"{'  ' + function + mark:<30}{ms:>8}  {verdict:<12}{ratio:>6}x{shared:>7}x{dev_ms:>10}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
