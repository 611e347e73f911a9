"""Matching engine benchmark: Meridian against liquibook, lightmatchingengine and a minimal floor.

One process, one run, the same seeded workload (bench/engine_workload.py) replayed on each engine.
Every operation is timed on its own with ``time.perf_counter_ns``; ops/s is the number of operations
over the sum of those per-operation times, so the loop around them is not counted for anyone. Each
engine replays the workload ``BENCH_ROUNDS`` times (default 3, fresh engine each time) and reports
its best round.

Environment: ``BENCH_N`` operations (default 200000), ``BENCH_SEED`` (default 42), ``BENCH_MODE``
``interpreted`` (default) or ``compiled`` (puts the mypyc build from ``make engine-compiled`` first
on the path), ``BENCH_OUT`` the JSON path (default bench/results/engine.json). Exits 1 when Meridian,
liquibook and the floor disagree on the number of trades, 2 when the compiled build is missing.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import liquibook
from lightmatchingengine.lightmatchingengine import LightMatchingEngine

import meridian_hotpath
from meridian.domain import Instrument, OrderType, SelfTradePrevention, TimeInForce
from meridian.protocol import ORDER_FLAG_STP_SHIFT, Cancel, NewOrder
from meridian.stats import nearest_rank

ROOT = Path(__file__).resolve().parent.parent
COMPILED_BUILD = ROOT / "build" / "engine_compiled"
ENGINE_MODULES = ("meridian_hotpath.engine", "meridian_hotpath.engine.book", "meridian_hotpath.engine.core")
AGREEING = ("meridian", "liquibook", "floor")  # engines with the same matching rules for this workload

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine_workload import SYMBOL, NewOp, Op, describe, generate  # noqa: E402
from bench.floor_engine import FloorEngine  # noqa: E402

Call = tuple[Callable[..., Any], tuple[Any, ...]]


class EngineRun:
    """One engine's prepared calls and, after ``count_trades``, its trade count."""

    def __init__(self, name: str, calls: list[Call], count_trades: Callable[[], int]) -> None:
        self.name = name
        self.calls = calls
        self.count_trades = count_trades


def engine_sources_digest() -> str:
    """The same digest hotpath/setup_mypyc.py records for the sources it compiled."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "hotpath" / "meridian_hotpath" / "engine").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_engine(mode: str) -> tuple[Any, bool]:
    """Import MatchingEngine (from the mypyc build when ``mode`` is compiled); True if it is compiled."""
    if mode == "compiled":
        stamp = COMPILED_BUILD / "meridian_hotpath" / "engine" / "SOURCES.sha256"
        if not stamp.exists() or stamp.read_text().strip() != engine_sources_digest():
            print(f"no up-to-date build in {COMPILED_BUILD}: run `make engine-compiled`", file=sys.stderr)
            raise SystemExit(2)
        # The build holds meridian_hotpath/engine/ and mypyc's runtime module at its root: look there
        # first for the engine, everywhere else as usual.
        sys.path.insert(0, str(COMPILED_BUILD))
        meridian_hotpath.__path__.insert(0, str(COMPILED_BUILD / "meridian_hotpath"))
    modules = [importlib.import_module(name) for name in ENGINE_MODULES]
    compiled = all(str(module.__file__).endswith(".so") for module in modules)
    return modules[0].MatchingEngine, compiled


def meridian_run(ops: Sequence[Op], engine_class: Any) -> EngineRun:
    instrument = Instrument(SYMBOL, tick_size=1, lot_size=1, reference_price=10_000, band_bps=2000)
    engine = engine_class([instrument])
    # The other engines have no self-trade prevention, so the workload's accounts may trade together.
    flags = SelfTradePrevention.ALLOW << ORDER_FLAG_STP_SHIFT
    limit, gtc = int(OrderType.LIMIT), int(TimeInForce.GTC)
    calls: list[Call] = []
    for i, op in enumerate(ops, 1):
        if isinstance(op, NewOp):
            request: Any = NewOrder(
                i, op.client_order_id, op.account, SYMBOL, op.side, limit, gtc, flags, op.quantity, op.price
            )
        else:
            request = Cancel(i, op.account, SYMBOL, op.order_id)
        calls.append((engine.process, (request,)))

    def trades() -> int:
        accepted = sum(isinstance(op, NewOp) for op in ops)  # every order valid: ids 1..accepted exist
        if engine.order_status(accepted) is None or engine.order_status(accepted + 1) is not None:
            raise SystemExit("meridian rejected part of the benchmark workload")
        return int(engine.trade_id)

    return EngineRun("meridian", calls, trades)


def floor_run(ops: Sequence[Op]) -> EngineRun:
    floor = FloorEngine()
    calls: list[Call] = [
        (floor.add, (op.order_id, op.side, op.price, op.quantity))
        if isinstance(op, NewOp)
        else (floor.cancel, (op.order_id,))
        for op in ops
    ]
    return EngineRun("floor", calls, lambda: floor.trades)


class LiquibookAdapter:
    """liquibook's plain C++ book (no depth tracking, its cheapest configuration that reports trades):
    SimpleOrder objects in, fills counted by an order listener, as in liquibook's own examples."""

    def __init__(self) -> None:
        class TradeCounter(liquibook.OrderListener):  # type: ignore[misc]
            def __init__(self) -> None:
                liquibook.OrderListener.__init__(self)
                self.trades = 0

            def on_accept(self, order: Any) -> None:
                pass

            def on_reject(self, order: Any, reason: Any) -> None:
                pass

            def on_fill(self, order: Any, matched_order: Any, quantity: int, cost: int) -> None:
                self.trades += 1

            def on_cancel(self, order: Any) -> None:
                pass

            def on_cancel_reject(self, order: Any, reason: Any) -> None:
                pass

            def on_replace(self, order: Any, size_delta: int, new_price: int) -> None:
                pass

            def on_replace_reject(self, order: Any, reason: Any) -> None:
                pass

        self._order_class = liquibook.SimpleOrder
        self.listener = TradeCounter()
        self.book = liquibook.liquibook_book_OrderBook()
        self.book.set_order_listener(self.listener)
        self.book.set_symbol(SYMBOL)
        self.orders: dict[int, Any] = {}  # liquibook holds raw pointers: keep every order alive

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        order = self._order_class(side == 1, price, quantity)
        self.orders[order_id] = order
        self.book.add(order)

    def cancel(self, order_id: int) -> None:
        self.book.cancel(self.orders[order_id])


def liquibook_run(ops: Sequence[Op]) -> EngineRun:
    adapter = LiquibookAdapter()
    calls: list[Call] = [
        (adapter.add, (op.order_id, op.side, op.price, op.quantity))
        if isinstance(op, NewOp)
        else (adapter.cancel, (op.order_id,))
        for op in ops
    ]
    return EngineRun("liquibook", calls, lambda: adapter.listener.trades)


class LightMatchingEngineAdapter:
    """lightmatchingengine reports each match twice (aggressor and passive): count the passive side."""

    def __init__(self) -> None:
        self.engine = LightMatchingEngine()
        self.trades = 0

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        order, trades = self.engine.add_order(SYMBOL, price, quantity, side)
        own = order.order_id
        self.trades += sum(1 for trade in trades if trade.order_id != own)

    def cancel(self, order_id: int) -> None:
        self.engine.cancel_order(order_id, SYMBOL)


def lightmatchingengine_run(ops: Sequence[Op]) -> EngineRun:
    adapter = LightMatchingEngineAdapter()
    calls: list[Call] = [
        (adapter.add, (op.order_id, op.side, op.price, op.quantity))
        if isinstance(op, NewOp)
        else (adapter.cancel, (op.order_id,))
        for op in ops
    ]
    return EngineRun("lightmatchingengine", calls, lambda: adapter.trades)


def measure(calls: list[Call]) -> list[int]:
    """Per-operation latencies in ns."""
    clock = time.perf_counter_ns
    latencies = [0] * len(calls)
    # The prepared calls and earlier engines' leftovers are not the measured engine's garbage:
    # keep them out of the collector's way so every engine pays only for the objects it creates.
    gc.collect()
    gc.freeze()
    try:
        for i, (call, args) in enumerate(calls):
            start = clock()
            call(*args)
            latencies[i] = clock() - start
    finally:
        gc.unfreeze()
    return latencies


def summarize(latencies: list[int], trades: int) -> dict[str, float | int]:
    ordered = sorted(latencies)
    n = len(ordered)

    def pct(p: float) -> float:
        return round(nearest_rank(ordered, p) / 1000, 3)

    return {
        "ops_per_s": round(n / (sum(ordered) / 1e9), 1),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "trades": trades,
    }


def print_table(results: dict[str, dict[str, float | int]], mode: str, n: int, rounds: int) -> None:
    meridian = float(results["meridian"]["ops_per_s"])
    print(f"engine benchmark: {n} ops, meridian {mode}, best of {rounds} rounds per engine")
    columns = ("ops/s", "p50 us", "p99 us", "p99.9 us", "trades", "meridian/x")
    header = f"{'engine':<22}" + "".join(f"{title:>12}" for title in columns)
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        ratio = meridian / float(row["ops_per_s"])
        print(
            f"{name:<22}{row['ops_per_s']:>12,.0f}{row['p50_us']:>12.2f}{row['p99_us']:>12.2f}"
            f"{row['p999_us']:>12.2f}{row['trades']:>12}{ratio:>11.2f}x"
        )


def main() -> int:
    n = int(os.environ.get("BENCH_N", "200000"))
    seed = int(os.environ.get("BENCH_SEED", "42"))
    rounds = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
    requested = os.environ.get("BENCH_MODE", "interpreted")
    out_path = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "engine.json")))
    engine_class, compiled = load_engine(requested)
    mode = "compiled" if compiled else "interpreted"
    ops = generate(n, seed)
    results: dict[str, dict[str, float | int]] = {}
    runs: list[Callable[[], EngineRun]] = [
        lambda: meridian_run(ops, engine_class),
        lambda: liquibook_run(ops),
        lambda: lightmatchingengine_run(ops),
        lambda: floor_run(ops),
    ]
    # Best of a few rounds per engine, each on a fresh engine, the engines' order rotating from
    # round to round: on a shared machine a burst of someone else's work then spoils one round of
    # one engine instead of that engine's only figure. Every round replays the whole workload.
    for round_number in range(rounds):
        order = runs[round_number % len(runs) :] + runs[: round_number % len(runs)]
        for build in order:
            run = build()
            row = summarize(measure(run.calls), run.count_trades())
            best = results.get(run.name)
            if best is not None and best["trades"] != row["trades"]:
                raise SystemExit(f"{run.name} traded differently from one round to the next")
            if best is None or row["ops_per_s"] > best["ops_per_s"]:
                results[run.name] = row
            del run
    results = {name: results[name] for name in ("meridian", "liquibook", "lightmatchingengine", "floor")}
    print_table(results, mode, n, rounds)
    counts = {name: results[name]["trades"] for name in AGREEING}
    agree = len(set(counts.values())) == 1
    print(f"trade counts {'agree' if agree else 'DISAGREE'}: {counts}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    workload = {**describe(n, seed), "rounds": rounds}
    report = {"workload": workload, "mode": mode, "engines": results, "trades_agree": agree}
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
