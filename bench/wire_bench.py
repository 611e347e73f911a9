"""Wire benchmark: order -> ack round trips over loopback to a real matching node, journal on.

Starts ``python -m meridian_hotpath serve`` in a temporary directory (journal and snapshots in
``BENCH_WIRE_DIR``, default the system temp dir) and says which file system holds it: on tmpfs an
fdatasync reaches memory, not a disk, and the figures say so. Three kinds of run share the same
client (``wire_client``):

* ``echo``: a bare asyncio echo server (``echo_server.py``, another process, same event loop) fed
  the same order frames: the floor of loopback, event loop and socket calls;
* ``heartbeat``: heartbeats to the node: the node's framing and dispatch, no engine, no journal;
* ``orders``: new orders crossing in pairs (a resting order, then one that fills it, so the books
  stay small), every answer held until its journal record is durable.

Each is run paced at ``BENCH_WIRE_RATE`` per second (default 10000; latency from each request's
scheduled time, corrected for coordinated omission) and pipelined (``BENCH_WIRE_ORDERS`` requests,
default 100000, with ``BENCH_WIRE_WINDOW`` in flight, default 256). The kinds are interleaved:
``BENCH_WIRE_ROUNDS`` rounds (default 4), each running every kind once in a rotating order, for
``BENCH_WIRE_SECONDS`` / rounds seconds paced (default 4 s in all) and orders / rounds requests
pipelined, so a change in the machine's load hits floor and orders alike. Reported: percentiles,
the achieved rate beside the configured one, ratios to both floors, and CPU time per request of
the server process (node or echo) and of the client beside wall time.

``BENCH_WIRE_NODE_ARGS`` adds arguments to the node's command line (e.g. ``--ack-after async``; a
replicated mode, ``--ack-after replica``, starts a primary and its standby with a lease table on an
in-process moto server, and measures the primary once its standby is in sync); alternatives
separated by ``;`` run one node each, one set of rows per alternative (e.g.
``--ack-after fsync;--ack-after async;--ack-after replica``). Writes ``BENCH_OUT`` (default
bench/results/wire.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.echo_server import READY_PREFIX as ECHO_READY  # noqa: E402
from bench.wire_client import LAST, RunResult, paced, pipelined  # noqa: E402
from bench.wire_node import (  # noqa: E402
    filesystem_of,
    journal_figures,
    node_counters,
    process_cpu_seconds,
    replicated_pair,
)
from meridian.domain import DEFAULT_INSTRUMENTS  # noqa: E402
from meridian.protocol import Heartbeat, Message, NewOrder, SessionRole  # noqa: E402
from meridian.session_auth import SessionKey, new_key, write_key_file  # noqa: E402
from meridian.stats import nearest_rank  # noqa: E402
from meridian_hotpath.process import NodeProcess  # noqa: E402

TARGET_P99_US = 100.0
KINDS = ("echo", "heartbeat", "orders")


def crossing_orders(first_request_id: int) -> Iterator[Message]:
    """Pairs per symbol: a sell that rests, then a buy from another account that fills it."""
    n = first_request_id
    while True:
        for instrument in DEFAULT_INSTRUMENTS:
            price, lot = instrument.reference_price, instrument.lot_size
            for side, account in ((2, "maker"), (1, "taker")):
                yield NewOrder(n, f"w{n}", account, instrument.symbol, side, 1, 1, 0, lot, price)
                n += 1


def heartbeats(first_request_id: int) -> Iterator[Message]:
    n = first_request_id
    while True:
        yield Heartbeat(n, 0)
        n += 1


class EchoProcess:
    """``bench/echo_server.py`` as a child process; stopped by its pid."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "echo_server.py")], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(ECHO_READY):
            self.stop()
            raise RuntimeError(f"echo server did not start: {line!r}")
        self.port = int(line[len(ECHO_READY) :])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Totals:
    """One kind of run (echo, heartbeat or orders) in one mode (paced or pipelined), over rounds."""

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.service: list[int] = []
        self.answered = 0
        self.wall_s = 0.0
        self.client_cpu_s = 0.0
        self.server_cpu_s = 0.0
        self.standby_cpu_s: float | None = None  # replicated modes: the standby's process
        self.journal: dict[str, float] = {}  # summed node counter deltas (orders only)

    def add(
        self,
        run: RunResult,
        server_cpu_s: float,
        journal: dict[str, float] | None = None,
        standby_cpu_s: float | None = None,
    ) -> None:
        self.latencies += run.latencies_ns
        self.service += run.service_ns
        self.answered += run.answered
        self.wall_s += run.wall_s
        self.client_cpu_s += run.client_cpu_s
        self.server_cpu_s += server_cpu_s
        if standby_cpu_s is not None:
            self.standby_cpu_s = (self.standby_cpu_s or 0.0) + standby_cpu_s
        for key, value in (journal or {}).items():
            self.journal[key] = self.journal.get(key, 0.0) + value

    def summary(self, configured_rate: int | None) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "count": self.answered,
            "p50_us": percentile_us(self.latencies, 0.50),
            "p99_us": percentile_us(self.latencies, 0.99),
            "p999_us": percentile_us(self.latencies, 0.999),
            "achieved_per_s": round(self.answered / self.wall_s) if self.wall_s else 0,
            "server_cpu_us_per_request": round(self.server_cpu_s / self.answered * 1e6, 2),
            "client_cpu_us_per_request": round(self.client_cpu_s / self.answered * 1e6, 2),
            "wall_us_per_request": round(self.wall_s / self.answered * 1e6, 2),
        }
        if self.standby_cpu_s is not None:
            figures["standby_cpu_us_per_request"] = round(self.standby_cpu_s / self.answered * 1e6, 2)
        if configured_rate is not None:
            figures["latency_from"] = "scheduled send (coordinated-omission corrected)"
            figures["configured_per_s"] = configured_rate
            figures["service_p50_us"] = percentile_us(self.service, 0.50)
            figures["service_p99_us"] = percentile_us(self.service, 0.99)
        else:
            figures["latency_from"] = "actual send"
        return figures | journal_figures(self.journal)


def percentile_us(samples: list[int], q: float) -> float:
    return round(nearest_rank(sorted(samples), q) / 1000, 1) if samples else 0.0


def ratios(orders: dict[str, Any], floor: dict[str, Any]) -> dict[str, float]:
    def ratio(key: str) -> float:
        return round(orders[key] / floor[key], 2) if floor[key] else 0.0

    return {
        "p50": ratio("p50_us"),
        "p99": ratio("p99_us"),
        "achieved_per_s": ratio("achieved_per_s"),
        "server_cpu_per_request": ratio("server_cpu_us_per_request"),
    }


def measure(
    node: NodeProcess,
    echo: EchoProcess,
    settings: dict[str, Any],
    credential: SessionKey | None = None,
    standby: NodeProcess | None = None,
) -> dict[str, Any]:
    """Interleaved rounds of echo, heartbeat and orders, paced then pipelined, against one node
    (logged on with ``credential`` once per connection when the node asks for a logon); with its
    ``standby``, that process's CPU beside the node's."""
    assert node.metrics_port is not None
    metrics_port = node.metrics_port
    rounds, rate = settings["rounds"], settings["rate"]
    streams = {
        "echo": crossing_orders(5 * 10**8),
        "heartbeat": heartbeats(10**9),
        "orders": crossing_orders(10**4),
    }
    targets = {"echo": (echo.port, echo.process.pid, LAST, None),
               "heartbeat": (node.port, node.process.pid, 0, credential),
               "orders": (node.port, node.process.pid, 0, credential)}  # fmt: skip
    pipelined(node.port, crossing_orders(1), 5000, 64, 0, credential)  # warm the paths on both sides
    pipelined(echo.port, crossing_orders(1), 5000, 64, LAST)
    modes: dict[str, Callable[[str], RunResult]] = {
        "paced": lambda kind: paced(
            targets[kind][0],
            streams[kind],
            rate,
            settings["seconds"] / rounds,
            targets[kind][2],
            targets[kind][3],
        ),
        "pipelined": lambda kind: pipelined(
            targets[kind][0],
            streams[kind],
            settings["orders"] // rounds,
            settings["window"],
            targets[kind][2],
            targets[kind][3],
        ),
    }
    results: dict[str, Any] = {}
    for mode, run in modes.items():
        totals = {kind: Totals() for kind in KINDS}
        for r in range(rounds):
            for kind in KINDS[r % 3 :] + KINDS[: r % 3]:  # rotate: no kind always runs first
                pid = targets[kind][1]
                before, cpu0 = node_counters(metrics_port), process_cpu_seconds(pid)
                standby0 = process_cpu_seconds(standby.process.pid) if standby else 0.0
                result = run(kind)
                cpu = process_cpu_seconds(pid) - cpu0
                standby_cpu = process_cpu_seconds(standby.process.pid) - standby0 if standby else None
                journal = None
                if kind == "orders":
                    after = node_counters(metrics_port)
                    journal = {key: after[key] - before.get(key, 0.0) for key in after}
                totals[kind].add(result, cpu, journal, standby_cpu)
        summaries = {kind: totals[kind].summary(rate if mode == "paced" else None) for kind in KINDS}
        results[mode] = summaries | {
            "orders_vs_echo": ratios(summaries["orders"], summaries["echo"]),
            "orders_vs_heartbeat": ratios(summaries["orders"], summaries["heartbeat"]),
        }
    return results


def main() -> int:
    settings = {
        "rate": int(os.environ.get("BENCH_WIRE_RATE", "10000")),
        "seconds": float(os.environ.get("BENCH_WIRE_SECONDS", "4")),
        "orders": int(os.environ.get("BENCH_WIRE_ORDERS", "100000")),
        "window": int(os.environ.get("BENCH_WIRE_WINDOW", "256")),
        "rounds": int(os.environ.get("BENCH_WIRE_ROUNDS", "4")),
    }
    node_configs = [c.split() for c in os.environ.get("BENCH_WIRE_NODE_ARGS", "").split(";")] or [[]]
    out_path = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "wire.json")))
    load_before = round(os.getloadavg()[0], 2)
    configs: list[dict[str, Any]] = []
    echo = EchoProcess()
    try:
        with tempfile.TemporaryDirectory(prefix="wire-bench-", dir=os.environ.get("BENCH_WIRE_DIR")) as tmp:
            journal = filesystem_of(Path(tmp))
            credential = new_key("bench-orders", SessionRole.ORDERS)  # the node asks every connection
            keys_file = Path(tmp) / "session-keys.json"
            write_key_file(keys_file, [credential])
            for i, extra in enumerate(node_configs):
                node_args = ("--metrics-port", "0", "--snapshot-every", "10000000", *extra)
                node_args = (*node_args, "--auth-keys-file", str(keys_file))
                replicated = any(arg.startswith("replica") for arg in extra)
                if replicated:
                    with replicated_pair(Path(tmp) / f"pair-{i}", *node_args) as pair:
                        measured = measure(pair.primary, echo, settings, credential, pair.standby)
                else:
                    with NodeProcess.start(Path(tmp) / f"node-{i}", *node_args) as node:
                        measured = measure(node, echo, settings, credential)
                configs.append({"node_args": " ".join(extra), **measured})
    finally:
        echo.stop()
    results = {
        **settings,
        "configured_rate": settings["rate"],
        "journal": {"dir": tmp, **journal},
        "node_configs": configs,
        "replica_over_async": replica_over_async(configs),
        "load_average_1m_before": load_before,  # the machine's own load: figures are only as quiet as it
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {out_path}")
    return 0


COLUMNS = (("p50 us", "p50_us"), ("p99 us", "p99_us"), ("p99.9 us", "p999_us"),
           ("asked/s", "configured_per_s"), ("achieved/s", "achieved_per_s"),
           ("srv cpu us", "server_cpu_us_per_request"), ("stby cpu us", "standby_cpu_us_per_request"),
           ("cli cpu us", "client_cpu_us_per_request"),
           ("wall us", "wall_us_per_request"), ("rec/fsync", "records_per_commit"),
           ("fsync us", "fsync_mean_us"), ("node p99<=", "node_p99_us"))  # fmt: skip


def replica_over_async(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each replicated alternative's paced p50 adds to async's, in echo round trips: each
    alternative's orders p50 over the echo p50 of its own interleaved rounds, less async's."""

    def ack_mode(config: dict[str, Any]) -> str | None:
        args = config["node_args"].split()
        return args[args.index("--ack-after") + 1] if "--ack-after" in args[:-1] else None

    asyncs = [c for c in configs if ack_mode(c) == "async"]
    if not asyncs:
        return []
    base = asyncs[0]["paced"]
    base_rtts = base["orders"]["p50_us"] / base["echo"]["p50_us"]
    costs = []
    for config in configs:
        if (ack_mode(config) or "").startswith("replica"):
            paced = config["paced"]
            rtts = paced["orders"]["p50_us"] / paced["echo"]["p50_us"]
            costs.append({
                "node_args": config["node_args"],
                "p50_over_async_us": round(paced["orders"]["p50_us"] - base["orders"]["p50_us"], 1),
                "p50_over_async_echo_round_trips": round(rtts - base_rtts, 2),
            })  # fmt: skip
    return costs


def print_table(results: dict[str, Any]) -> None:
    journal = results["journal"]
    print(f"wire round trips over loopback; journal in {journal['dir']} ({journal['verdict']})")
    print(
        f"{results['rounds']} interleaved rounds per mode; load average {results['load_average_1m_before']}"
        f" before, {results['load_average_1m_after']} after ({results['cpus']} CPUs, shared)"
    )
    print("paced: latency from each request's scheduled send (coordinated omission corrected); "
          "pipelined: from the actual send; cpu and wall per request")  # fmt: skip
    print(f"{'run':<30}" + "".join(f"{title:>12}" for title, _ in COLUMNS))
    for config in results["node_configs"]:
        label = config["node_args"] or "node defaults"
        for mode in ("paced", "pipelined"):
            for kind in KINDS:
                row = config[mode][kind]
                name = f"{mode} {kind}" + (f" [{label}]" if len(results["node_configs"]) > 1 else "")
                print(f"{name:<30}" + "".join(f"{row.get(key, '-'):>12}" for _, key in COLUMNS))
            vs_echo, vs_heartbeat = config[mode]["orders_vs_echo"], config[mode]["orders_vs_heartbeat"]
            print(
                f"  orders / echo: p50 x{vs_echo['p50']}, p99 x{vs_echo['p99']}, "
                f"rate x{vs_echo['achieved_per_s']};"
                f" orders / heartbeat: p50 x{vs_heartbeat['p50']}, p99 x{vs_heartbeat['p99']}, "
                f"node cpu x{vs_heartbeat['server_cpu_per_request']}"
            )
        orders = config["paced"]["orders"]
        verdict = "meets" if orders["p99_us"] < TARGET_P99_US else "misses"
        over = orders["p99_us"] - config["paced"]["echo"]["p99_us"]
        print(
            f"  [{label}] paced p99 {verdict} the {TARGET_P99_US:.0f} us target "
            f"({over:.1f} us over the echo floor)"
        )
    for cost in results["replica_over_async"]:
        print(
            f"  [{cost['node_args']}] paced p50 over async's: {cost['p50_over_async_us']} us, "
            f"{cost['p50_over_async_echo_round_trips']} echo round trips (each over its own rounds' echo)"
        )


if __name__ == "__main__":
    sys.exit(main())
