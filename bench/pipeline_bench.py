"""Post-trade pipeline benchmark: the market-data handler and the ledger, each on one core; the
KPL codec; and market data end to end (``bench/marketdata_e2e.py``) on the machine's CPUs.

Market data: the real ``MarketDataFunction`` handler (Powertools decorators, BatchProcessor,
decoding, collapsing, item building, the batched writer and its thread pool) on Kinesis events of
10,000 records. DynamoDB is a stand-in (``tests.counting_dynamodb``) that stores items and
counts calls and items, in two variants:

* ``no_io``: calls return at once, so the figure is handler logic alone;
* ``modelled_latency``: every call first waits ``BENCH_DYNAMODB_LATENCY_MS`` (default 5 ms, a
  modelled network round trip, not a measured one), so the writer's thread pool overlaps real
  waits. The same workload with one writer lane (``MARKET_DATA_WRITE_CONCURRENCY=1``) is its
  baseline: what the pool buys.

The baseline of ``no_io`` writes every record with its own PutItem (no collapsing).

Every figure is a whole run (all measured batches, one after the other, after one warm-up batch):
``BENCH_REPEATS`` runs (default 3) each, and the JSON gives the best and the median run; nothing
is stitched from different runs.

Ledger: the real ``LedgerFunction`` handler on SQS batches of 10 trades into PostgreSQL (embedded
pgserver, or ``DATABASE_URL``), positions updated incrementally. Write transactions per trade are
measured by PostgreSQL's own transaction-id counter around the run.

The process is pinned to one CPU. Environment: ``BENCH_BATCHES`` market-data batches (default 10),
``BENCH_REPEATS``, ``BENCH_DYNAMODB_LATENCY_MS``, ``BENCH_LEDGER_TRADES`` (default 3000),
``BENCH_OUT`` (default bench/results/pipeline.json).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from market_data import consumer as market_data_consumer
from market_data.items import book_item, trade_item
from market_data.records import BookTop, decode
from market_data.writer import MarketDataWriter
from psycopg.conninfo import make_conninfo

from bench.kpl_codec import bench_codec
from bench.marketdata_e2e import bench_end_to_end
from bench.pipeline_report import print_codec, print_end_to_end
from meridian import db
from meridian.consumers import PoisonMessageError
from meridian.events import TradeExecuted
from meridian.ledger import migrate, rebuild_from_history
from meridian_local.delivery.lambda_events import (
    LocalLambdaContext,
    eventbridge_event,
    kinesis_event,
    sqs_event,
)
from meridian_local.delivery.pollers import Handler, load_handler
from tests.counting_dynamodb import CountingDynamoDB

ROOT = Path(__file__).resolve().parent.parent
RECORDS_PER_BATCH = 10_000
T0 = 1_772_461_800_000_000_000
SYMBOLS = ["AAPL", "MSFT", "ESZ6", "BTCUSD"] + [f"SYM{i:02d}" for i in range(12)]  # 12 carry price_scale
TABLE = "meridian-market-data-bench"
AT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


ALLOWED_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin_to_one_cpu() -> str:
    """Pin the process to the least busy CPU it may use (other work shares this machine)."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    allowed = ALLOWED_CPUS
    try:
        import psutil  # noqa: PLC0415 - only to pick the quietest CPU

        busy = psutil.cpu_percent(interval=0.5, percpu=True)
        cpu = min(allowed, key=lambda c: busy[c] if c < len(busy) else 100.0)
    except ImportError:
        cpu = allowed[0]
    os.sched_setaffinity(0, {cpu})
    return f"cpu {cpu}"


def top_of_book(symbol: str, seq: int, price: int) -> dict[str, Any]:
    return {
        "type": "top_of_book",
        "symbol": symbol,
        "seq": seq,
        "bid_price": price,
        "bid_quantity": 300,
        "ask_price": price + 1,
        "ask_quantity": 200,
        "timestamp_ns": T0 + seq,
    }


def node_trade(symbol: str, seq: int, price: int, quantity: int) -> dict[str, Any]:
    return {
        "type": "trade",
        "symbol": symbol,
        "seq": seq,
        "trade_id": seq,
        "price": price,
        "quantity": quantity,
        "aggressor_side": 1,
        "timestamp_ns": T0 + seq,
    }


def trade_event(
    seq: int, symbol: str, price: Decimal, quantity: int, buyer: str, seller: str
) -> TradeExecuted:
    return TradeExecuted(
        event_id=f"bench-{seq}",
        occurred_at=AT + timedelta(milliseconds=seq),
        execution_id=f"node-1-{seq}",
        symbol=symbol,
        price=price,
        quantity=quantity,
        aggressor_side="BUY",
        buy_order_id=f"b{seq}",
        sell_order_id=f"s{seq}",
        buy_account=buyer,
        sell_account=seller,
        buy_client_order_id=f"cb{seq}",
        sell_client_order_id=f"cs{seq}",
        node_seq=seq,
    )


@dataclass
class Workload:
    events: list[dict[str, Any]]
    tops: int = 0
    node_trades: int = 0


def market_data_workload(batches: int, seed: int = 42) -> Workload:
    """What the nodes put on the stream: 75% top-of-book, 25% trade prints. (The trades a restarted
    node re-sends, one conditional PutItem each, come once per restart and are not part of it.)"""
    rng = random.Random(seed)
    work = Workload(events=[])
    seq = 0
    for b in range(batches):
        payloads: list[bytes | dict[str, Any]] = []
        while len(payloads) < RECORDS_PER_BATCH:
            seq += 1
            symbol = rng.choice(SYMBOLS)
            extra = {} if symbol in SYMBOLS[:4] else {"price_scale": 2}
            price = 19_000 + rng.randint(-200, 200)
            if rng.random() < 0.75 or len(payloads) > RECORDS_PER_BATCH - 2:
                work.tops += 1
                payloads.append(top_of_book(symbol, seq, price) | extra)
                continue
            work.node_trades += 1
            payloads.append(node_trade(symbol, seq, price, rng.randint(1, 500)) | extra)
        work.events.append(kinesis_event(payloads, first_sequence=b * RECORDS_PER_BATCH + 1))
    return work


@dataclass(frozen=True)
class Run:
    """One whole run: every measured batch, one after the other."""

    wall: float  # seconds, first batch in to last answer out
    cpu: float  # process CPU seconds (every thread) over the same span
    failed: int  # records the handler reported as failed


def time_batches(handler: Handler, events: list[dict[str, Any]]) -> Run:
    """Run ``events`` through ``handler`` in order and time the whole run."""
    failed = 0
    with contextlib.redirect_stdout(io.StringIO()):  # the EMF metric line per invocation
        w0, c0 = time.perf_counter(), time.process_time()
        for event in events:
            response = handler(event, LocalLambdaContext())
            failed += len(response["batchItemFailures"])
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Run(wall, cpu, failed)


def best_and_median(runs: list[Run], items: int, unit: str) -> dict[str, Any]:
    """Rates of the best and of the median whole run (by wall time; the lower median for an even
    count, so that it is a run that happened), each with its own CPU rate."""
    by_wall = sorted(runs, key=lambda r: r.wall)
    best, median = by_wall[0], by_wall[(len(by_wall) - 1) // 2]
    return {
        "runs": len(runs),
        f"{unit}_per_s_best_run": round(items / best.wall),
        f"{unit}_per_s_median_run": round(items / median.wall),
        f"cpu_{unit}_per_s_best_run": round(items / best.cpu),
        f"cpu_{unit}_per_s_median_run": round(items / median.cpu),
        f"cpu_us_per_{unit[:-1]}_median_run": round(median.cpu / items * 1e6, 2),
        "wall_s_per_run": [round(r.wall, 4) for r in runs],
        "failed_records": max(r.failed for r in runs),
    }


class LatentDynamoDB(CountingDynamoDB):
    """The counting stand-in behind a modelled network: each call waits ``latency_s`` first.

    The wait releases the GIL, as a socket read would, so the writer's lanes overlap; the state
    and the counters are then changed under a lock (the calls come from the writer's threads).
    """

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s
        self._lock = threading.Lock()

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        time.sleep(self.latency_s)
        with self._lock:
            return super().batch_write_item(**kwargs)

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        time.sleep(self.latency_s)
        with self._lock:
            return super().put_item(**kwargs)


def naive_handler(fake: CountingDynamoDB) -> Handler:
    """The baseline: decode each record and write it with its own PutItem."""

    def handle(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            try:
                update = decode(base64.b64decode(record["kinesis"]["data"]))
            except PoisonMessageError:
                failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
                continue
            item = book_item(update) if isinstance(update, BookTop) else trade_item(update, 604_800)
            fake.put_item(TableName=TABLE, Item=item)
        return {"batchItemFailures": failures}

    return handle


def _handler_runs(
    handler: Handler, work: Workload, repeats: int, make_fake: Callable[[], CountingDynamoDB], lanes: int
) -> tuple[list[Run], CountingDynamoDB]:
    """``repeats`` whole runs of the real handler, each on a fresh table (same writes every run)."""
    runs, fake = [], make_fake()
    for _ in range(repeats):
        fake = make_fake()
        market_data_consumer._writer = MarketDataWriter(fake, TABLE, concurrency=lanes)
        time_batches(handler, work.events[:1])  # warm-up
        fake.batch_write_calls = fake.put_item_calls = fake.items_sent = 0
        runs.append(time_batches(handler, work.events[1:]))
        check_books(fake, work)  # the benchmark only counts correct work
    return runs, fake


def bench_market_data(batches: int, repeats: int, latency_ms: float) -> dict[str, Any]:
    os.environ["MARKET_DATA_TABLE"] = TABLE
    handler = load_handler(ROOT / "functions" / "market_data", "app.lambda_handler")
    work = market_data_workload(batches + 1)
    measured = batches * RECORDS_PER_BATCH
    lanes = int(os.environ.get("MARKET_DATA_WRITE_CONCURRENCY", "8"))

    runs, fake = _handler_runs(handler, work, repeats, CountingDynamoDB, lanes)
    batch_items = fake.items_sent - fake.put_item_calls
    no_io = {
        "dynamodb": "counting stand-in (tests.counting_dynamodb): calls return at once",
        "writer_lanes": lanes,
        **best_and_median(runs, measured, "records"),
        "batch_write_item_calls": fake.batch_write_calls,
        "put_item_calls": fake.put_item_calls,
        "items_written": fake.items_sent,
        "dynamodb_items_per_call": round(batch_items / max(fake.batch_write_calls, 1), 2),
        "dynamodb_items_per_call_all": round(fake.items_sent / max(fake.calls, 1), 2),
        "aws_calls_per_batch": round(fake.calls / batches, 1),
    }

    naive_fake = CountingDynamoDB()
    naive = naive_handler(naive_fake)
    naive_runs = [time_batches(naive, work.events[1:]) for _ in range(repeats)]
    baseline = {
        "dynamodb": no_io["dynamodb"],
        **best_and_median(naive_runs, measured, "records"),
        "aws_calls_per_batch": round(naive_fake.calls / (batches * repeats), 1),
        "items_per_call": 1.0,
    }

    latency_s = latency_ms / 1000
    modelled: dict[str, dict[str, Any]] = {}
    for name, lane_count in (("modelled_latency", lanes), ("modelled_latency_one_lane", 1)):
        latent_runs, latent = _handler_runs(
            handler, work, repeats, lambda: LatentDynamoDB(latency_s), lane_count
        )
        modelled[name] = {
            "dynamodb": f"counting stand-in, every call waits {latency_ms} ms first (modelled, not measured)",
            "dynamodb_call_latency_ms": latency_ms,
            "writer_lanes": lane_count,
            **best_and_median(latent_runs, measured, "records"),
            "aws_calls_per_batch": round(latent.calls / batches, 1),
        }
    return {
        "records_per_batch": RECORDS_PER_BATCH,
        "batches_measured": batches,
        "records_measured": measured,
        "mix": {"top_of_book": work.tops, "node_trades": work.node_trades},
        "no_io": no_io,
        "baseline_put_item_per_record_no_io": baseline,
        **modelled,
    }


def check_books(fake: CountingDynamoDB, work: Workload) -> None:
    """The table must hold each symbol's newest book: the benchmark only counts correct work."""
    newest: dict[str, int] = {}
    for event in work.events:
        for record in event["Records"]:
            payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
            if payload.get("type") == "top_of_book":
                newest[payload["symbol"]] = max(newest.get(payload["symbol"], 0), payload["seq"])
    for symbol, seq in newest.items():
        held = fake.items[(f"SYMBOL#{symbol}", "BOOK")]["node_seq"]["N"]
        if int(held) != seq:
            raise SystemExit(f"book of {symbol} is at {held}, expected {seq}")


def postgres_url() -> str:
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        return external
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - only without DATABASE_URL

        server = get_server(tempfile.mkdtemp(prefix="meridian-bench-pg-"), cleanup_mode="delete")
    return str(server.get_uri())


def ledger_events(trades: int) -> list[dict[str, Any]]:
    """SQS batches of 10 trade.executed.v1 events between 50 accounts in the four default symbols."""
    rng = random.Random(7)
    accounts = [f"ACC-{i:04d}" for i in range(50)]
    bodies = []
    for i in range(trades):
        buyer, seller = rng.sample(accounts, 2)
        price = Decimal(rng.randint(18_000, 20_000)).scaleb(-2)
        trade = trade_event(i, rng.choice(SYMBOLS[:4]), price, rng.randint(1, 500), buyer, seller)
        bodies.append(json.dumps(eventbridge_event(trade)))
    return [sqs_event(bodies[i : i + 10]) for i in range(0, len(bodies), 10)]


def ledger_run(url: str, handler_dir: Path, trades: int, durable: bool) -> dict[str, float]:
    """Trades through the ledger handler into a new database; ``durable=False`` skips the fsync wait."""
    name = f"bench_{os.getpid()}_{'durable' if durable else 'async'}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        if not durable:  # isolates the handler's own cost from the disk's commit latency
            admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off'.encode())
    bench_url = make_conninfo(url, dbname=name)
    with psycopg.connect(bench_url, autocommit=True) as conn:
        migrate(conn)
    os.environ["DATABASE_URL"] = bench_url
    db.reset_shared_connection()
    handler = load_handler(handler_dir, "app.lambda_handler")
    events = ledger_events(trades + 100)
    warm, measured = events[:10], events[10:]
    time_batches(handler, warm)
    xid_before = current_xid(url)
    run = time_batches(handler, measured)
    xid_after = current_xid(url)
    duplicates = time_batches(handler, measured[:50])  # redeliveries: each a no-op transaction
    with psycopg.connect(bench_url) as conn:
        recorded = conn.execute("SELECT count(*) FROM trades").fetchone()
        stored = conn.execute("SELECT count(*) FROM positions").fetchone()
        rebuilt = rebuild_from_history(conn)
    db.reset_shared_connection()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}"'.encode())
    if recorded != (trades + 100,) or stored != (len(rebuilt),) or run.failed or duplicates.failed:
        raise SystemExit(f"ledger recorded {recorded} trades, {stored} positions, {run.failed} failures")
    write_transactions = xid_after - xid_before - 1  # the second txid_current() call takes one itself
    return {
        "per_s": trades / run.wall,
        "cpu_per_s": trades / run.cpu,
        "duplicates_per_s": 500 / duplicates.wall,
        "write_transactions_per_trade": write_transactions / trades,
    }


def current_xid(url: str) -> int:
    """PostgreSQL's transaction-id counter: every transaction that writes takes the next one."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT txid_current()").fetchone()
    assert row is not None
    return int(row[0])


def bench_ledger(trades: int) -> dict[str, Any]:
    database = "given DATABASE_URL" if os.environ.get("DATABASE_URL") else "pgserver (embedded, unix socket)"
    url = postgres_url()
    handler_dir = ROOT / "functions" / "ledger"
    durable = ledger_run(url, handler_dir, trades, durable=True)
    relaxed = ledger_run(url, handler_dir, trades, durable=False)
    return {
        "database": database,
        "trades_measured": trades,
        "ledger_trades_per_s": round(durable["per_s"]),
        "ledger_cpu_trades_per_s": round(durable["cpu_per_s"]),
        "ledger_duplicate_trades_per_s": round(durable["duplicates_per_s"]),
        "ledger_trades_per_s_without_commit_fsync": round(relaxed["per_s"]),
        # Measured: PostgreSQL transaction ids taken during the run / trades (other writers to the
        # same server, possible with DATABASE_URL, would raise it).
        "ledger_write_transactions_per_trade": round(durable["write_transactions_per_trade"], 3),
        "timing": "one whole run of every trade after 10 warm-up batches",
    }


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # no per-duplicate INFO lines in the timings
    cpu = pin_to_one_cpu()
    batches = int(os.environ.get("BENCH_BATCHES", "10"))
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    latency_ms = float(os.environ.get("BENCH_DYNAMODB_LATENCY_MS", "5"))
    ledger_trades = int(os.environ.get("BENCH_LEDGER_TRADES", "3000"))
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results" / "pipeline.json"))
    md = bench_market_data(batches, repeats, latency_ms)
    ledger = bench_ledger(ledger_trades)
    codec = bench_codec(repeats=repeats)
    if ALLOWED_CPUS:  # end to end: the publisher here, the consumer in a child, each on a CPU
        os.sched_setaffinity(0, set(ALLOWED_CPUS))
    end_to_end = bench_end_to_end()
    result = {
        "cpu": cpu,
        "python": sys.version.split()[0],
        "market_data": md,
        "ledger": ledger,
        "kpl_codec": codec,
        "market_data_end_to_end": end_to_end,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result, repeats)
    print(f"wrote {out}")
    return 0


def _rates(figures: dict[str, Any]) -> tuple[str, str, str]:
    return (
        f"{figures['records_per_s_best_run']:,}",
        f"{figures['records_per_s_median_run']:,}",
        f"{figures['cpu_records_per_s_median_run']:,}",
    )


def print_table(result: dict[str, Any], repeats: int) -> None:
    md, ledger = result["market_data"], result["ledger"]
    no_io, base = md["no_io"], md["baseline_put_item_per_record_no_io"]
    latent, one_lane = md["modelled_latency"], md["modelled_latency_one_lane"]
    print(
        f"post-trade pipeline benchmark ({result['cpu']}; {md['batches_measured']} batches of "
        f"{md['records_per_batch']:,} records per run, {repeats} whole runs each)"
    )
    print(f"{'market data handler, records/s':52} {'best run':>12} {'median run':>12} {'CPU (median)':>14}")
    rows = [
        ("DynamoDB answers at once (handler logic)", no_io),
        ("  baseline: one PutItem per record", base),
        (f"DynamoDB calls wait {latent['dynamodb_call_latency_ms']} ms (modelled), "
         f"{latent['writer_lanes']} lanes", latent),
        ("  baseline: the same, one writer lane", one_lane),
    ]  # fmt: skip
    for label, figures in rows:
        best, median, cpu_rate = _rates(figures)
        print(f"{label:52} {best:>12} {median:>12} {cpu_rate:>14}")
    print(
        f"AWS calls per batch: {no_io['aws_calls_per_batch']:,} (baseline {base['aws_calls_per_batch']:,}); "
        f"items per BatchWriteItem {no_io['dynamodb_items_per_call']}, per call of any kind "
        f"{no_io['dynamodb_items_per_call_all']}"
    )
    print(f"record mix (all batches): {md['mix']}")
    print(
        f"ledger, handler into PostgreSQL ({ledger['database']}), one run of {ledger['trades_measured']:,}:"
    )
    for label, key in (
        ("trades/s", "ledger_trades_per_s"),
        ("CPU trades/s", "ledger_cpu_trades_per_s"),
        ("redelivered trades (no-ops/s)", "ledger_duplicate_trades_per_s"),
        ("without the commit fsync (trades/s)", "ledger_trades_per_s_without_commit_fsync"),
        ("write transactions per trade (measured)", "ledger_write_transactions_per_trade"),
    ):
        print(f"  {label:44} {ledger[key]:>12,}")
    print_codec(result["kpl_codec"])
    print_end_to_end(result["market_data_end_to_end"])


if __name__ == "__main__":
    raise SystemExit(main())
