"""Wire benchmark: order -> ack round trips over loopback to a real matching node, journal on.

Starts ``python -m meridian_hotpath serve`` in a temporary directory (journal and snapshots on the
file system of ``BENCH_WIRE_DIR``, default the system temp dir, so every ack waits for a real
fdatasync) and measures, from one client connection:

* ``heartbeat_10k``: heartbeats at the offered rate: the floor (loopback, event loop, framing),
  no engine and no journal: the baseline the order figures compare against;
* ``offered_10k``: new orders paced at ``BENCH_WIRE_RATE`` per second (default 10000) for
  ``BENCH_WIRE_SECONDS`` (default 4);
* ``saturation``: ``BENCH_WIRE_ORDERS`` (default 100000) new orders pipelined with
  ``BENCH_WIRE_WINDOW`` (default 256) in flight.

``BENCH_WIRE_NODE_ARGS`` adds arguments to the node's command line (e.g.
``--journal-thread-above-us 0`` to always fsync on the journal thread).

A round trip runs from just before the request's ``send`` to the ``recv`` that completes its answer
(the frame flagged LAST). Orders cross in pairs (a resting order, then one that fills it), so the
books stay small. Writes ``BENCH_OUT`` (default bench/results/wire.json).
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import Flag, Heartbeat, Message, NewOrder, decode_stream, encode
from meridian.stats import nearest_rank
from meridian_hotpath.process import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_US = 100.0


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


class Connection:
    """One socket; ``receive`` timestamps every completed answer by request id."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = b""
        self.sent_at: dict[int, int] = {}
        self.round_trips: list[int] = []

    def send(self, messages: list[Message]) -> None:
        data = b"".join(encode(m) for m in messages)
        now = time.perf_counter_ns()
        for message in messages:
            self.sent_at[message.request_id] = now
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)

    def receive(self, timeout: float) -> int:
        """Wait up to ``timeout`` for data; return how many answers it completed."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return 0
        chunk = self.sock.recv(1 << 20)
        now = time.perf_counter_ns()
        if not chunk:
            raise ConnectionError("the node closed the connection")
        self.buffer += chunk
        frames, consumed = decode_stream(self.buffer)
        self.buffer = self.buffer[consumed:]
        completed = 0
        for message, flags in frames:
            if flags & Flag.LAST:
                self.round_trips.append(now - self.sent_at.pop(message.request_id))
                completed += 1
        return completed


def paced(port: int, stream: Iterator[Message], rate: int, seconds: float) -> list[int]:
    """Send one request every 1/rate s; return the round trips in ns."""
    connection = Connection(port)
    interval = 1_000_000_000 // rate
    total = int(rate * seconds)
    start = time.perf_counter_ns() + 10_000_000
    sent = 0
    while sent < total or connection.sent_at:
        now = time.perf_counter_ns()
        due = min(total, max(0, (now - start) // interval + 1)) - sent
        if due > 0:
            connection.send([next(stream) for _ in range(due)])
            sent += due
        next_due = start + sent * interval
        wait = max(0.0, (next_due - time.perf_counter_ns()) / 1e9) if sent < total else 1.0
        connection.receive(wait)
    connection.sock.close()
    return connection.round_trips


def pipelined(port: int, stream: Iterator[Message], count: int, window: int) -> tuple[list[int], float]:
    """Keep ``window`` requests in flight until ``count`` are answered; return round trips and seconds."""
    connection = Connection(port)
    started = time.perf_counter()
    sent = 0
    while sent < count or connection.sent_at:
        room = min(window - len(connection.sent_at), count - sent)
        if room > 0:
            connection.send([next(stream) for _ in range(room)])
            sent += room
        connection.receive(1.0)
    elapsed = time.perf_counter() - started
    connection.sock.close()
    return connection.round_trips, elapsed


def percentile_us(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return round(nearest_rank(ordered, q) / 1000, 1)


def summary(samples: list[int]) -> dict[str, float]:
    return {
        "p50_us": percentile_us(samples, 0.50),
        "p99_us": percentile_us(samples, 0.99),
        "p999_us": percentile_us(samples, 0.999),
        "count": len(samples),
    }


def node_counters(metrics_port: int) -> dict[str, float]:
    """The node's own journal counters: commits (fsyncs), seconds in fsync, records committed."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    values = {s.name: s.value for s in samples if not s.labels}
    inside = {  # the node's own received -> answer written, over its most recent 10k requests
        f"node_{s.labels['quantile']}_us": round(s.value * 1e6, 1)
        for s in samples
        if s.name == "meridian_request_latency_quantile_seconds"
    }
    return {
        "commits": values.get("meridian_journal_fsync_seconds_count", 0.0),
        "fsync_seconds": values.get("meridian_journal_fsync_seconds_sum", 0.0),
        "records": values.get("meridian_journal_batch_records_sum", 0.0),
        **inside,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): load-independent cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def journal_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    inside = {key: value for key, value in after.items() if key.startswith("node_")}
    commits = after["commits"] - before["commits"]
    if not commits:
        return {"journal_commits": 0, "records_per_commit": 0.0, "fsync_mean_us": 0.0}
    return {
        "journal_commits": int(commits),
        "records_per_commit": round((after["records"] - before["records"]) / commits, 1),
        "fsync_mean_us": round((after["fsync_seconds"] - before["fsync_seconds"]) / commits * 1e6, 1),
        **inside,
    }


def main() -> int:
    rate = int(os.environ.get("BENCH_WIRE_RATE", "10000"))
    seconds = float(os.environ.get("BENCH_WIRE_SECONDS", "4"))
    orders = int(os.environ.get("BENCH_WIRE_ORDERS", "100000"))
    window = int(os.environ.get("BENCH_WIRE_WINDOW", "256"))
    out_path = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "wire.json")))
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="wire-bench-", dir=os.environ.get("BENCH_WIRE_DIR")) as tmp:
        data_dir = Path(tmp) / "node"
        node_args = (
            "--metrics-port",
            "0",
            "--snapshot-every",
            "10000000",
            *os.environ.get("BENCH_WIRE_NODE_ARGS", "").split(),
        )
        with NodeProcess.start(data_dir, *node_args) as node:
            assert node.metrics_port is not None
            warmup = crossing_orders(1)
            pipelined(node.port, warmup, 5000, 64)  # warm the interpreter paths on both sides
            heartbeat = summary(paced(node.port, heartbeats(10**9), rate, min(seconds, 2.0)))
            stream = crossing_orders(10_000)
            before = node_counters(node.metrics_port)
            offered = summary(paced(node.port, stream, rate, seconds))
            after_offered = node_counters(node.metrics_port)
            cpu_before = cpu_seconds(node.process.pid)
            round_trips, elapsed = pipelined(node.port, stream, orders, window)
            node_cpu = cpu_seconds(node.process.pid) - cpu_before
            after_saturation = node_counters(node.metrics_port)
            node.terminate()
    offered |= journal_figures(before, after_offered)
    saturation = {
        "orders_per_s": round(len(round_trips) / elapsed),
        "p50_us": percentile_us(round_trips, 0.50),
        "p99_us": percentile_us(round_trips, 0.99),
        "window": window,
        "count": len(round_trips),
        "node_cpu_us_per_order": round(node_cpu / len(round_trips) * 1e6, 1),
        **journal_figures(after_offered, after_saturation),
    }
    results = {
        "offered_10k": offered,
        "saturation": saturation,
        "heartbeat_10k": heartbeat,
        "rate": rate,
        "journal_dir": tmp,
        "load_average_1m": load_before,  # the machine's own load: these figures are only as quiet as it
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0


COLUMNS = (("p50 us", "p50_us"), ("p99 us", "p99_us"), ("p99.9 us", "p999_us"), ("orders/s", "orders_per_s"),
           ("records/fsync", "records_per_commit"), ("fsync us", "fsync_mean_us"),
           ("node p50 us", "node_p50_us"), ("node p99 us", "node_p99_us"),
           ("cpu us/order", "node_cpu_us_per_order"))  # fmt: skip


def print_table(results: dict[str, Any]) -> None:
    offered, saturation, heartbeat = results["offered_10k"], results["saturation"], results["heartbeat_10k"]
    rows = {
        "heartbeat @ offered rate": heartbeat,
        f"orders @ {results['rate']}/s": {**offered, "orders_per_s": results["rate"]},
        "orders, pipelined": saturation,
    }
    print(f"wire round trips over loopback; journal in {results['journal_dir']}, fdatasync per batch")
    cpus = os.cpu_count()
    print(f"load average before the run: {results['load_average_1m']} ({cpus} CPUs, shared)")
    print(f"{'run':<26}" + "".join(f"{title:>15}" for title, _ in COLUMNS))
    for name, row in rows.items():
        print(f"{name:<26}" + "".join(f"{row.get(key, ''):>15}" for _, key in COLUMNS))
    verdict = "meets" if offered["p99_us"] < TARGET_P99_US else "misses"
    above = offered["p99_us"] - heartbeat["p99_us"]
    print(f"p99 at the offered rate {verdict} the {TARGET_P99_US:.0f} us target ({above:.1f} us over floor)")


if __name__ == "__main__":
    sys.exit(main())
