"""How long a symbol is halted while it moves shards, by the number of working orders it has.

Two node processes on loopback (``--ack-after fsync``, each with its journal on this disk); for
each book size, the source gets that many resting orders (both sides, several price levels, a few
stop orders), then ``meridian.symbol_move``'s node steps run, each timed: halt the source, copy the
book (export, enter every order on the destination, halt it there), remove it from the source,
resume on the destination. The order-record and route steps are DynamoDB and SSM calls, one per
order and one, and are not timed here. Besides wall time per step, the bench reports the run's CPU
time per moved order (this process, the client side) and, as the floor measured in the same run,
interleaved with the moves, the wall time of a heartbeat round trip to the destination.

    BENCH_MOVE_SIZES=100,1000,5000 BENCH_OUT=bench/results/symbol_move.json python bench/symbol_move_bench.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from meridian import symbol_move
from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import OrderType, Side, TimeInForce
from meridian.protocol import NewOrder, NewStopOrder
from meridian_hotpath.process import NodeProcess

SYMBOL = "AAPL"


def _fill_book(client: HotpathClient, orders: int, tag: str) -> None:
    requests: list[NewOrder | NewStopOrder] = []
    for n in range(orders):
        if n % 50 == 49:
            requests.append(
                NewStopOrder(
                    0,
                    f"{tag}s{n}",
                    f"ACC-{n % 7}",
                    SYMBOL,
                    Side.BUY,
                    OrderType.MARKET,
                    TimeInForce.GTC,
                    0,
                    1,
                    0,
                    19500,
                )
            )
            continue
        side, price = (Side.BUY, 18990 - n % 20) if n % 2 else (Side.SELL, 19010 + n % 20)
        requests.append(
            NewOrder(
                0, f"{tag}{n}", f"ACC-{n % 7}", SYMBOL, side, OrderType.LIMIT, TimeInForce.GTC, 0, 1, price
            )
        )
    client.pipeline(requests)


def _floor(client: HotpathClient, count: int) -> float:
    """Wall seconds of ``count`` sequential heartbeat round trips to a node (no journal write)."""
    start = time.perf_counter()
    for _ in range(count):
        client.heartbeat()
    return time.perf_counter() - start


def _move(source: HotpathClient, destination: HotpathClient) -> dict[str, float]:
    steps: dict[str, float] = {}
    cpu = time.process_time()
    start = time.perf_counter()
    symbol_move.halt(source, SYMBOL)
    steps["halt_source_ms"] = (time.perf_counter() - start) * 1e3
    mark = time.perf_counter()
    report = symbol_move.copy_book(source, destination, destination, SYMBOL)
    steps["copy_ms"] = (time.perf_counter() - mark) * 1e3
    mark = time.perf_counter()
    removed = symbol_move.remove_from_source(source, source, destination, destination, SYMBOL)
    steps["remove_ms"] = (time.perf_counter() - mark) * 1e3
    mark = time.perf_counter()
    symbol_move.resume(destination, SYMBOL)
    steps["resume_ms"] = (time.perf_counter() - mark) * 1e3
    steps["halted_ms"] = (time.perf_counter() - start) * 1e3
    steps["client_cpu_us_per_order"] = (time.process_time() - cpu) * 1e6 / max(report.orders, 1)
    if removed.left_on_source or report.copied != report.orders:
        raise RuntimeError(f"move incomplete: {report}, {removed}")
    steps["orders"] = report.orders
    return steps


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_MOVE_SIZES", "100,1000,5000").split(",")]
    out = Path(os.environ.get("BENCH_OUT", "bench/results/symbol_move.json"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        a = NodeProcess.start(Path(tmp) / "a", "--node-number", "1", "--metrics-port", "0")
        b = NodeProcess.start(Path(tmp) / "b", "--node-number", "2", "--metrics-port", "0")
        try:
            nodes = [HotpathClient(a.host, a.port, timeout=30), HotpathClient(b.host, b.port, timeout=30)]
            for round_no, size in enumerate(sizes):
                source, destination = nodes[round_no % 2], nodes[(round_no + 1) % 2]
                symbol_move.resume(source, SYMBOL)  # it may have moved away from here before
                _fill_book(source, size, f"r{round_no}-")
                floor_before = _floor(destination, 200)
                steps = _move(source, destination)
                floor_after = _floor(destination, 200)
                floor_ms = (floor_before + floor_after) / 2 / 200 * 1e3
                # Empty the destination's book for the next round's move back.
                symbol_move.halt(destination, SYMBOL)
                for order in destination.export_book(SYMBOL).orders:
                    destination.cancel(order.account, SYMBOL, order.order_id)
                row = {
                    **steps,
                    "round_trip_floor_ms": floor_ms,
                    "halted_ms_per_order": steps["halted_ms"] / size,
                    "halted_in_round_trips_per_order": steps["halted_ms"] / size / floor_ms,
                }
                rows.append(row)
                print(
                    f"{size:>6} orders: halted {steps['halted_ms']:8.1f} ms (copy {steps['copy_ms']:.1f}, "
                    f"remove {steps['remove_ms']:.1f}), {row['halted_ms_per_order'] * 1e3:.0f} us/order = "
                    f"{row['halted_in_round_trips_per_order']:.2f} round trips "
                    f"(floor {floor_ms * 1e3:.0f} us), "
                    f"client CPU {steps['client_cpu_us_per_order']:.0f} us/order"
                )
        finally:
            close_pooled_connections()
            a.stop()
            b.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
