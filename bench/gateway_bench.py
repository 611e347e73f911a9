"""Streaming gateway benchmark (``make bench-gateway``): fan-out of a matching node's market data.

A moto server (its own process) holds the market-data stream (``BENCH_GATEWAY_SHARDS`` shards); a
matching node (``python -m meridian_hotpath serve --kinesis-stream``) publishes its trades and book
depth there, fed by crossing orders over the four default symbols at ``BENCH_GATEWAY_RATE`` orders
a second (a sell of two lots that rests, two buys that fill it: two trades and book updates). The server
under test reads the stream and fans it out to ``N`` WebSocket clients (``gateway_fanout_clients``,
one process), each subscribed to one symbol's book and trades:

* ``gateway``: the real ``meridian_gateway`` (``gateway_fanout_server.py gateway``);
* ``floor``: a bare ``websockets`` broadcast server reading the same stream the same way.

For each N in ``BENCH_GATEWAY_CLIENTS`` (default 1,100,1000), ``BENCH_GATEWAY_ROUNDS`` rounds
(default 2) each run the floor and the gateway in turn (which goes first alternates), each for
``BENCH_GATEWAY_SECONDS`` (default 5) of orders, so a change in the machine's load hits both.
Reported per N and server: messages delivered a second (all clients), trade latency p50/p99 from
the node's timestamp to the client's arrival (both clocks this machine's; it includes the stream
hop, the same for both), the server's CPU seconds per delivered message and per stream update, the
clients' CPU, connections closed early (4008: a slow consumer); then the gateway's ratios to the
floor and its added latency (p50 and p99 minus the floor's). Writes ``BENCH_OUT`` (default
bench/results/gateway.json). Bad settings exit 2 with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meridian.stats import nearest_rank  # noqa: E402

STREAM = "meridian-market-data-bench"
MODES = ("floor", "gateway")
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}  # fmt: skip
TARGET_ADDED_P99_MS = 10.0


@dataclass(frozen=True)
class Settings:
    clients: tuple[int, ...] = (1, 100, 1000)
    rate: int = 2000  # orders a second into the node
    seconds: float = 5.0  # of orders per server per round
    rounds: int = 2
    shards: int = 4
    poll_interval: float = 0.01  # both servers' GetRecords pause per pass over the shards
    max_queue: int = 2000  # the gateway's per-connection outbox
    out: Path = ROOT / "bench" / "results" / "gateway.json"


def settings_from(env: Mapping[str, str]) -> Settings:
    """The run's settings from ``BENCH_GATEWAY_*`` and ``BENCH_OUT``; ValueError names a bad one."""
    default = Settings()

    def number(name: str, kind: type, fallback: Any, low: float) -> Any:
        text = env.get(name)
        if text is None or text == "":
            return fallback
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a number") from None
        if value < low:
            raise ValueError(f"{name}={text!r} must be at least {low}")
        return value

    clients = default.clients
    if env.get("BENCH_GATEWAY_CLIENTS"):
        try:
            clients = tuple(int(part) for part in env["BENCH_GATEWAY_CLIENTS"].split(","))
        except ValueError:
            given = env["BENCH_GATEWAY_CLIENTS"]
            raise ValueError(
                f"BENCH_GATEWAY_CLIENTS={given!r}: comma-separated counts, e.g. 1,100,1000"
            ) from None
        if not clients or min(clients) < 1:
            raise ValueError("BENCH_GATEWAY_CLIENTS: every count must be at least 1")
    return Settings(
        clients=clients,
        rate=number("BENCH_GATEWAY_RATE", int, default.rate, 1),
        seconds=number("BENCH_GATEWAY_SECONDS", float, default.seconds, 0.5),
        rounds=number("BENCH_GATEWAY_ROUNDS", int, default.rounds, 1),
        shards=number("BENCH_GATEWAY_SHARDS", int, default.shards, 1),
        poll_interval=number("BENCH_GATEWAY_POLL_S", float, default.poll_interval, 0.001),
        max_queue=number("BENCH_GATEWAY_MAX_QUEUE", int, default.max_queue, 10),
        out=Path(env.get("BENCH_OUT") or default.out),
    )


# ---- processes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_line(stream: IO[str], prefix: str, timeout: float, what: str) -> str:
    """The first line of ``stream`` starting with ``prefix``, within ``timeout`` seconds."""
    found: list[str] = []

    def read() -> None:
        for line in stream:
            if line.startswith(prefix):
                found.append(line.strip())
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
    return found[0]


def _stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def moto_server(shards: int) -> Iterator[str]:
    """moto server in a process of its own, with the market-data stream; yields its endpoint."""
    import boto3  # noqa: PLC0415

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **AWS_ENV},
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="bench", aws_secret_access_key="bench")  # noqa: S106 # fmt: skip
        kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=STREAM)
        yield endpoint
    finally:
        _stop(process)


def cpu_seconds(pid: int) -> float:
    import psutil  # noqa: PLC0415

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# ---- the feed ---------------------------------------------------------------------------------


def crossing_orders(first: int) -> Iterator[Any]:
    """Per symbol in turn: a sell of two lots that rests, then two buys of one lot that fill it (two
    trades; the book's ask goes 2, 1, none, so each order changes the book)."""
    from meridian.domain import DEFAULT_INSTRUMENTS  # noqa: PLC0415
    from meridian.protocol import NewOrder  # noqa: PLC0415

    n = first
    while True:
        for instrument in DEFAULT_INSTRUMENTS:
            price, lot = instrument.reference_price, instrument.lot_size
            for side, account, lots in ((2, "maker", 2), (1, "taker", 1), (1, "taker", 1)):
                yield NewOrder(n, f"g{n}", account, instrument.symbol, side, 1, 1, 0, lots * lot, price)
                n += 1


def drive(port: int, rate: int, seconds: float, orders: Iterator[Any]) -> int:
    """Orders into the node at ``rate`` a second for ``seconds``, in 10 ms ticks; returns how many."""
    from meridian.client import HotpathClient, close_pooled_connections  # noqa: PLC0415

    client = HotpathClient("127.0.0.1", port, timeout=10.0)
    tick, sent = 0.01, 0
    began = time.monotonic()
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(rate * min(seconds, elapsed + tick)) - sent
            if due > 0:
                client.pipeline([next(orders) for _ in range(due)])
                sent += due
            pause = began + (elapsed // tick + 1) * tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        close_pooled_connections()
    return sent


# ---- one run: a server, its clients, the orders -----------------------------------------------


def run_one(mode: str, clients: int, node_port: int, settings: Settings, orders: Iterator[Any],
            env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "gateway_fanout_server.py"), mode, "--stream", STREAM,
         "--poll-interval", str(settings.poll_interval), "--max-queue", str(settings.max_queue)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    client_process: subprocess.Popen[str] | None = None
    try:
        assert server.stdin is not None
        assert server.stdout is not None
        port = int(_read_line(server.stdout, "fanout-server ready", 60, f"the {mode} server").split()[-1])
        client_process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "gateway_fanout_clients.py"), mode,
             "--url", f"ws://127.0.0.1:{port}/stream", "--clients", str(clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert client_process.stdin is not None
        assert client_process.stdout is not None
        _read_line(client_process.stdout, "fanout-clients ready", 120 + clients / 10, f"{clients} clients")
        server_cpu, clients_cpu = cpu_seconds(server.pid), cpu_seconds(client_process.pid)
        client_process.stdin.write("go\n")
        client_process.stdin.flush()
        began = time.perf_counter()
        sent = drive(node_port, settings.rate, settings.seconds, orders)
        driven = time.perf_counter() - began
        time.sleep(0.5)  # the last updates through the stream
        wall = time.perf_counter() - began
        server_cpu = cpu_seconds(server.pid) - server_cpu
        clients_cpu = cpu_seconds(client_process.pid) - clients_cpu
        client_process.stdin.write("stop\n")
        client_process.stdin.flush()
        received = json.loads(client_process.stdout.readline())
        client_process.wait(60)
        server.stdin.write("stop\n")
        server.stdin.flush()
        updates = json.loads(server.stdout.readline())["updates"]
        server.wait(30)
    finally:
        if client_process is not None:
            _stop(client_process)
        _stop(server)
    return {
        "mode": mode, "clients": clients, "orders": sent, "drive_s": driven, "wall_s": wall,
        "server_cpu_s": server_cpu, "clients_cpu_s": clients_cpu, "stream_updates": updates, **received,
    }  # fmt: skip


def percentile_ms(latency_ns: list[int], q: float) -> float | None:
    return round(nearest_rank(sorted(latency_ns), q) / 1e6, 3) if latency_ns else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows per (clients, mode) over their rounds, and the gateway's ratios to the floor per N."""
    rows: dict[str, dict[str, Any]] = {}
    for n in sorted({r["clients"] for r in runs}):
        for mode in MODES:
            mine = [r for r in runs if r["clients"] == n and r["mode"] == mode]
            if not mine:
                continue
            wall = sum(r["wall_s"] for r in mine)
            delivered = sum(sum(r["messages"].values()) for r in mine)
            trades = sum(r["messages"].get("trade", 0) for r in mine)
            latency = [x for r in mine for x in r["latency_ns"]]
            updates = sum(r["stream_updates"] for r in mine)
            server_cpu = sum(r["server_cpu_s"] for r in mine)
            closed_early = sum(
                c for r in mine for code, c in r["closed"].items() if code not in ("1000", "None")
            )
            rows[f"{mode}/{n}"] = {
                "mode": mode,
                "clients": n,
                "rounds": len(mine),
                "orders_per_s": round(sum(r["orders"] for r in mine) / sum(r["drive_s"] for r in mine)),
                "stream_updates_per_s": round(updates / wall),
                "delivered_per_s": round(delivered / wall),
                "trades_delivered": trades,
                "book_messages_delivered": sum(r["messages"].get("book_update", 0) for r in mine),
                "trade_p50_ms": percentile_ms(latency, 0.50),
                "trade_p99_ms": percentile_ms(latency, 0.99),
                "latency_samples": len(latency),
                "server_cpu_us_per_message": round(server_cpu / delivered * 1e6, 3) if delivered else None,
                "server_cpu_us_per_update": round(server_cpu / updates * 1e6, 3) if updates else None,
                "server_cpu_share": round(server_cpu / wall, 3),
                "messages_per_server_cpu_s": round(delivered / server_cpu) if server_cpu else None,
                "clients_cpu_share": round(sum(r["clients_cpu_s"] for r in mine) / wall, 3),
                "closed_early": closed_early,
            }
    ratios: dict[str, dict[str, Any]] = {}
    for n in sorted({r["clients"] for r in runs}):
        gateway, floor = rows.get(f"gateway/{n}"), rows.get(f"floor/{n}")
        if not gateway or not floor:
            continue

        def ratio(key: str, g: dict[str, Any] = gateway, f: dict[str, Any] = floor) -> float | None:
            return round(g[key] / f[key], 2) if g[key] and f[key] else None

        def added(key: str, g: dict[str, Any] = gateway, f: dict[str, Any] = floor) -> float | None:
            return round(g[key] - f[key], 3) if g[key] is not None and f[key] is not None else None

        ratios[str(n)] = {
            "delivered_per_s": ratio("delivered_per_s"),
            "trade_p50": ratio("trade_p50_ms"),
            "trade_p99": ratio("trade_p99_ms"),
            "server_cpu_per_message": ratio("server_cpu_us_per_message"),
            "added_p50_ms": added("trade_p50_ms"),
            "added_p99_ms": added("trade_p99_ms"),
        }
    return {"rows": rows, "gateway_over_floor": ratios}


def table(summary: dict[str, Any]) -> str:
    head = (f"{'server':<8}{'N':>6}{'orders/s':>10}{'updates/s':>11}{'delivered/s':>13}{'p50 ms':>9}"
            f"{'p99 ms':>9}{'cpu us/msg':>12}{'msgs/cpu-s':>12}{'srv cpu':>9}{'cli cpu':>9}"
            f"{'dropped':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in summary["rows"].values():
        lines.append(
            f"{row['mode']:<8}{row['clients']:>6}{row['orders_per_s']:>10}{row['stream_updates_per_s']:>11}"
            f"{row['delivered_per_s']:>13}{row['trade_p50_ms']!s:>9}{row['trade_p99_ms']!s:>9}"
            f"{row['server_cpu_us_per_message']!s:>12}{row['messages_per_server_cpu_s']!s:>12}"
            f"{row['server_cpu_share']:>9}{row['clients_cpu_share']:>9}{row['closed_early']:>9}"
        )
    lines.append("")
    lines.append(
        "gateway / floor (same run, interleaved): delivered/s, p50, p99, CPU per message; added p50/p99 ms"
    )
    for n, r in summary["gateway_over_floor"].items():
        lines.append(
            f"  N={n:>5}: {r['delivered_per_s']}x  {r['trade_p50']}x  {r['trade_p99']}x  "
            f"{r['server_cpu_per_message']}x  +{r['added_p50_ms']} / +{r['added_p99_ms']} ms"
        )
    return "\n".join(lines)


def bench(settings: Settings) -> dict[str, Any]:
    from meridian_hotpath.process import NodeProcess  # noqa: PLC0415

    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="meridian-bench-gateway-") as scratch,
        moto_server(settings.shards) as aws,
    ):
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL": aws}
        orders = crossing_orders(1)
        with NodeProcess.start(
            Path(scratch) / "node", "--kinesis-stream", STREAM, env={**AWS_ENV, "AWS_ENDPOINT_URL": aws}
        ) as node:
            drive(node.port, settings.rate, 0.5, orders)  # warm-up: the node's and the stream's first records
            for n in settings.clients:
                for round_no in range(settings.rounds):
                    order = MODES if round_no % 2 == 0 else MODES[::-1]
                    for mode in order:
                        runs.append(run_one(mode, n, node.port, settings, orders, env))
                        print(f"  {mode:<8} N={n:<5} round {round_no + 1}: "
                              f"{sum(runs[-1]['messages'].values())} messages", flush=True)  # fmt: skip
    summary = summarise(runs)
    return {
        "settings": {**asdict(settings), "out": str(settings.out)},
        "target_added_p99_ms": TARGET_ADDED_P99_MS,
        **summary,
    }


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    try:
        settings = settings_from(os.environ if env is None else env)
    except ValueError as exc:
        print(f"gateway_bench: {exc}", file=sys.stderr)
        return 2
    print(f"gateway fan-out: {settings.rate} orders/s into the node, N = {settings.clients}, "
          f"{settings.rounds} rounds of {settings.seconds} s per server", flush=True)  # fmt: skip
    report = bench(settings)
    print(table(report))
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    settings.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {settings.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
