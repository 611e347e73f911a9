"""Recovery and memory of the native matching core.

1. **Recovery**: a journal of ``BENCH_RECOVERY_RECORDS`` records (default 1,000,000: the seeded
   synthetic order flow, written as the node writes it) recovered by ``recovery.recover`` (native
   replay: CRC32C, frame checks and matching per record, no Python object per record): records/s,
   and CPU time per record beside wall time.
2. **Memory per live order**: the engine's own allocation (``memory_bytes``) with ``BENCH_LIVE``
   resting orders (default 50,000) against an empty engine, per order.
3. **Memory over history**: ``BENCH_DAYS`` trading days (default 10) of ``BENCH_DAY_ORDERS`` orders
   each (default 1,000,000; 10M in all), every order with its own client order id, cancelled once
   ``BENCH_LIVE`` are live (so 50k stay live), an engine-wide END_OF_DAY between days. Memory and
   the process RSS at the end of each day: flat (live orders and one day's client order ids),
   not growing with the orders ever taken.

Prints a table and writes ``BENCH_OUT`` (default bench/results/recovery.json).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meridian.domain import DEFAULT_INSTRUMENTS  # noqa: E402
from meridian.protocol import encode  # noqa: E402
from meridian_hotpath.engine import MatchingEngine  # noqa: E402
from meridian_hotpath.journal import JournalWriter  # noqa: E402
from meridian_hotpath.orderflow import synthetic_flow  # noqa: E402
from meridian_hotpath.recovery import journal_dir, recover  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def write_journal(data_dir: Path, records: int) -> tuple[int, float]:
    """The seeded flow as the node journals it; returns (engine checksum, seconds to build)."""
    started = time.perf_counter()
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    journal = JournalWriter(journal_dir(data_dir), 1)
    journal.start_syncer()  # never started: writes go to the page cache, closed at the end
    batch: list[bytes] = []
    for request in synthetic_flow(seed=11, count=records):
        batch.append(encode(request))
        if len(batch) == 256:
            engine.feed(b"".join(batch))
            journal.write_records(engine.take_journal(), engine.seq)
            batch.clear()
    if batch:
        engine.feed(b"".join(batch))
        journal.write_records(engine.take_journal(), engine.seq)
    journal.close()
    return engine.checksum(), time.perf_counter() - started


def measure_recovery(records: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        data_dir = Path(tmp)
        checksum, built = write_journal(data_dir, records)
        cpu, wall = time.process_time(), time.perf_counter()
        engine, report = recover(data_dir, DEFAULT_INSTRUMENTS)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if engine.checksum() != checksum or report.replayed != records:
            raise SystemExit("recovery did not reach the journal's state")
        size = sum(p.stat().st_size for p in journal_dir(data_dir).iterdir())
    return {
        "records": records,
        "journal_bytes": size,
        "records_per_s": round(records / wall),
        "wall_s": round(wall, 3),
        "cpu_ns_per_record": round(cpu / records * 1e9, 1),
        "build_s": round(built, 1),
    }


def measure_live(live: int) -> dict[str, float | int]:
    empty = MatchingEngine(DEFAULT_INSTRUMENTS, expected_client_order_ids=16)
    base = empty.memory_bytes()
    engine = MatchingEngine(DEFAULT_INSTRUMENTS, expected_client_order_ids=16)
    for n in range(live):  # resting bids, no client order id: the order pool and levels alone
        engine.submit(n + 1, "", f"A{n % 8}", "AAPL", 1, 1, 1, 0, 1, 18_000 + n % 900)
    with_ids = MatchingEngine(DEFAULT_INSTRUMENTS, expected_client_order_ids=16)
    for n in range(live):
        with_ids.submit(n + 1, f"C{n}", f"A{n % 8}", "AAPL", 1, 1, 1, 0, 1, 18_000 + n % 900)
    return {
        "live_orders": live,
        "bytes_per_live_order": round((engine.memory_bytes() - base) / live, 1),
        "bytes_per_live_order_with_client_order_id": round((with_ids.memory_bytes() - base) / live, 1),
    }


def measure_history(days: int, per_day: int, live: int) -> list[dict[str, float | int]]:
    # Sized as a node is for its day: the day's client order ids and the live ones carried over.
    engine = MatchingEngine(DEFAULT_INSTRUMENTS, expected_client_order_ids=per_day + live, preallocate=True)
    submit, cancel, admin = engine.submit, engine.cancel, engine.admin
    rows = []
    request = 0
    oldest = 1
    for day in range(1, days + 1):
        started = time.perf_counter()
        for n in range(per_day):
            request += 1
            submit(request, f"D{day}-{n}", "ACC1", "AAPL", 1 + n % 2, 1, 1, 0, 1, 18_000 + (n % 2) * 2000)
            if engine.live_order_count > live:
                cancel(request, "ACC1", "AAPL", oldest)
                oldest += 1
        seconds = time.perf_counter() - started
        rows.append(
            {
                "day": day,
                "orders_so_far": day * per_day,
                "live_orders": engine.live_order_count,
                "client_order_ids_held": engine.client_order_ids,
                "engine_bytes_end_of_day": engine.memory_bytes(),
                "rss_bytes_end_of_day": rss_bytes(),
                "seconds": round(seconds, 2),
            }
        )
        admin(request + 1, "", 3)  # END_OF_DAY: the finished orders' ids go; the live orders stay
        rows[-1]["client_order_ids_after_end_of_day"] = engine.client_order_ids
        rows[-1]["engine_bytes_after_end_of_day"] = engine.memory_bytes()
    return rows


def main() -> int:
    records = int(os.environ.get("BENCH_RECOVERY_RECORDS", "1000000"))
    live = int(os.environ.get("BENCH_LIVE", "50000"))
    days = int(os.environ.get("BENCH_DAYS", "10"))
    per_day = int(os.environ.get("BENCH_DAY_ORDERS", "1000000"))
    out = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "recovery.json")))
    recovery = measure_recovery(records)
    print(
        f"recovery: {recovery['records']:,} records ({recovery['journal_bytes'] / 1e6:.0f} MB) in "
        f"{recovery['wall_s']} s: {recovery['records_per_s']:,} records/s, "
        f"{recovery['cpu_ns_per_record']} ns CPU per record"
    )
    per_live = measure_live(live)
    print(
        f"memory per live order: {per_live['bytes_per_live_order']} bytes "
        f"({per_live['bytes_per_live_order_with_client_order_id']} with a client order id)"
    )
    history = measure_history(days, per_day, live)
    columns = (("day", 4), ("orders", 12), ("live", 8), ("ids held", 10), ("engine MB", 11), ("RSS MB", 9))
    print("".join(f"{title:>{width}}" for title, width in columns) + f"{'ids after EOD':>15}")
    for row in history:
        print(
            f"{row['day']:>4}{row['orders_so_far']:>12,}{row['live_orders']:>8,}{row['client_order_ids_held']:>10,}"
            f"{row['engine_bytes_end_of_day'] / 1e6:>11.1f}{row['rss_bytes_end_of_day'] / 1e6:>9.1f}"
            f"{row['client_order_ids_after_end_of_day']:>15,}"
        )
    first, last = history[0], history[-1]
    growth = last["engine_bytes_end_of_day"] / first["engine_bytes_end_of_day"]
    print(f"engine memory, last day / first day: {growth:.3f}x (flat: history is not kept)")
    report = {
        "recovery": recovery,
        "memory_per_live_order": per_live,
        "history": history,
        "engine_memory_last_day_over_first": round(growth, 4),
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
