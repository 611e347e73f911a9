"""Market data end to end: publisher -> a stream that enforces Kinesis's limits -> the handler -> DynamoDB.

A generated tape (a quarter trades, the rest top-of-book changes, built with the node's own
``trade_record``/``top_of_book_record``) is offered to a ``StreamPublisher`` at a fixed rate, in
real time, for ``BENCH_E2E_SECONDS`` seconds. Its ``KinesisSink`` writes to ``LimitedKinesis``
(``tests.limited_kinesis``: 10 shards, each refusing more than 1 MiB or 1,000 records in
any second, record by record, as Kinesis does). A consumer thread reads every shard continuously
(Lambda polls each shard about once a second and may wait up to the mapping's batching window: the
lag here is the pipeline's own, without that) in batches of at most 10,000 records, and runs the
real ``MarketDataFunction`` handler on them, writing to the counting DynamoDB stand-in, which notes
when each item arrives.

Figures per run: updates handled a second (offered updates that reached the table, or, for a book
update, were superseded by a newer book of the symbol that did) over the whole run, from the first
offer to the last offered update handled; every trade must reach the table, in order, or the run
fails. Records and bytes per shard-second (the mean over the seconds a shard was written, and the
busiest one-second window); throttled records; lag from ``publish`` to the table, p50/p99, for
trades and for books. Process CPU time per update beside the wall time.

The floor, run interleaved with the same tape: the sink as it was, one Kinesis record per update
(``PlainSink``), paced by the same stream: a symbol then gets at most 1,000 records a second.

Offered rates: ``BENCH_E2E_ONE_RATE`` (default 10,000) and ``BENCH_E2E_TEN_RATE`` (100,000).
``BENCH_E2E_CONSUMERS`` (default 2, this machine's cores) consumer processes share the shards
(shard i goes to consumer i mod n), as Lambda runs one consumer per shard: on AWS ten shards are
ten concurrent handlers, so one process for all of them measures one core, not the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import queue
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market_data import consumer as market_data_consumer
from market_data.writer import MarketDataWriter

from meridian.kpl import user_records
from meridian.protocol import Fill
from meridian_hotpath.kinesis_sink import KinesisSink
from meridian_hotpath.marketdata import top_of_book_record, trade_record
from meridian_hotpath.publisher import StreamPublisher
from meridian_hotpath.stream import StreamRecord
from meridian_local.delivery.lambda_events import LocalLambdaContext, kinesis_record, stream_arn
from meridian_local.delivery.pollers import load_handler
from tests.counting_dynamodb import CountingDynamoDB
from tests.limited_kinesis import LimitedKinesis

ROOT = Path(__file__).resolve().parent.parent
STREAM = "meridian-market-data-bench"
TABLE = "meridian-market-data-bench"
SHARDS = 10
TICK_S = 0.001
GET_RECORDS_LIMIT = 10_000
DRAIN_LIMIT_S = 20.0


def distinct_shard_symbols(count: int) -> list[str]:
    """``count`` symbols on ``count`` different shards of a fresh ``SHARDS``-shard stream (named
    symbols would collide: ten names hash to about six of ten shards)."""
    stream = LimitedKinesis(STREAM, SHARDS)
    chosen: list[str] = []
    taken: set[str] = set()
    for n in range(10_000):
        name = f"SYM{n:03d}"
        shard = stream.shard_for(name).shard_id
        if shard not in taken:
            taken.add(shard)
            chosen.append(name)
        if len(chosen) == count:
            return chosen
    raise AssertionError("not enough symbols")


def tape(symbols: Sequence[str], updates: int, seed: int = 11) -> list[StreamRecord]:
    """``updates`` records round-robin over ``symbols``, a quarter of them trades, seq per symbol."""
    rng = random.Random(seed)
    seqs = dict.fromkeys(symbols, 0)
    now = time.time_ns()
    records = []
    for n in range(updates):
        symbol = symbols[n % len(symbols)]
        seqs[symbol] += 1
        seq, price = seqs[symbol], 19_000 + rng.randint(-50, 50)
        if rng.random() < 0.25:
            fill = Fill(
                n, seq, (7 << 48) + n, symbol, price, rng.randint(1, 500), 1, n, n + 1, "", "", "", "", 0, 0
            )
            records.append(trade_record(fill, now))
        else:
            records.append(top_of_book_record(symbol, seq, (price, 300, price + 1, 200), now))
        records[-1].payload["price_scale"] = 2  # not a default instrument: the record says its scale
    return records


class PlainSink:
    """The floor: the sink as it was before aggregation, one Kinesis record per update, up to 500
    a call, retrying the refused ones."""

    def __init__(self, client: LimitedKinesis, attempts: int = 4, delay: float = 0.05) -> None:
        self.client, self.attempts, self.delay = client, attempts, delay

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        failed: list[StreamRecord] = []
        for start in range(0, len(records), 500):
            pending = list(records[start : start + 500])
            for attempt in range(self.attempts):
                if attempt:
                    time.sleep(self.delay * 2 ** (attempt - 1))
                entries = [{"Data": r.to_json(), "PartitionKey": r.partition_key} for r in pending]
                answer = self.client.put_records(StreamName=STREAM, Records=entries)
                pending = [r for r, res in zip(pending, answer["Records"], strict=True) if "ErrorCode" in res]
                if not pending:
                    break
            failed += pending
        return failed


class ArrivalsTable(CountingDynamoDB):
    """The counting stand-in, noting when each trade and book item arrives (the writer's threads
    call it, so under a lock). Times are ``time.monotonic()``: one clock for every process."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[str, str, int, float]] = []  # (kind, symbol, node_seq, when)
        self._lock = threading.Lock()

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            answer = super().batch_write_item(**kwargs)
            when = time.monotonic()
            for _table, requests in kwargs["RequestItems"].items():
                for request in requests:
                    item = request["PutRequest"]["Item"]
                    self.arrivals.append(("trade", item["symbol"]["S"], int(item["node_seq"]["N"]), when))
            return answer

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            answer = super().put_item(**kwargs)  # a stale book raises: no arrival
            item = kwargs["Item"]
            kind = "book" if item["sk"]["S"] == "BOOK" else "trade"
            self.arrivals.append((kind, item["symbol"]["S"], int(item["node_seq"]["N"]), time.monotonic()))
            return answer


class TappedKinesis(LimitedKinesis):
    """The stream, handing what each call accepted to the consumer process of each shard."""

    def __init__(self, taps: Sequence[Any]) -> None:
        super().__init__(STREAM, SHARDS, clock=time.monotonic)
        self.taps = taps
        self._sent = {shard.shard_id: 0 for shard in self.shards}

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        answer = super().put_records(**kwargs)
        fresh: list[list[Any]] = [[] for _ in self.taps]
        for index, shard in enumerate(self.shards):
            start = self._sent[shard.shard_id]
            for record in shard.records[start:]:
                fresh[index % len(self.taps)].append(
                    (
                        shard.shard_id,
                        record.sequence_number,
                        record.partition_key,
                        record.data,
                        record.arrival,
                    )
                )
            self._sent[shard.shard_id] = len(shard.records)
        for tap, records in zip(self.taps, fresh, strict=True):
            if records:
                tap.put(records)
        return answer


def consumer_count() -> int:
    count = int(os.environ.get("BENCH_E2E_CONSUMERS", "2"))
    if not 1 <= count <= SHARDS:
        raise SystemExit(f"BENCH_E2E_CONSUMERS must be 1-{SHARDS}, got {count}")
    return count


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The consumers' results as one consumer's (each shard, so each symbol, had one consumer)."""
    return {
        "arrivals": [arrival for part in parts for arrival in part["arrivals"]],
        "trade_items": sum(part["trade_items"] for part in parts),
        "books": {symbol: seq for part in parts for symbol, seq in part["books"].items()},
        "invocations": sum(part["invocations"] for part in parts),
        "failed_records": sum(part["failed_records"] for part in parts),
        "cpu_s": sum(part["cpu_s"] for part in parts),
    }


def consume(tap: Any, results: Any) -> None:
    """The consumer process: what Lambda's mapping does, shard by shard, with no batching window:
    batches of at most 10,000 records of one shard to the real handler, until ``None`` comes."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ["MARKET_DATA_TABLE"] = TABLE
    handler = load_handler(ROOT / "functions" / "market_data", "app.lambda_handler")
    table = ArrivalsTable()
    market_data_consumer._writer = MarketDataWriter(table, TABLE)
    arn = stream_arn(STREAM)
    results.put("ready")  # warm: its imports are done before the first update is offered
    waiting: dict[str, list[tuple[str, str, bytes, float]]] = {}
    invocations = failures = 0
    cpu0 = time.process_time()
    done = False
    with contextlib.redirect_stdout(io.StringIO()):  # the EMF metric line per invocation
        while not done:
            batch = tap.get()
            while batch is not None:
                for shard_id, *rest in batch:
                    waiting.setdefault(shard_id, []).append(tuple(rest))
                try:
                    batch = tap.get_nowait()
                except queue.Empty:
                    break
            done = batch is None
            for shard_id, records in waiting.items():
                for start in range(0, len(records), GET_RECORDS_LIMIT):
                    chunk = records[start : start + GET_RECORDS_LIMIT]
                    event = {
                        "Records": [
                            kinesis_record(data, key, number, arn, shard_id, arrival)
                            for number, key, data, arrival in chunk
                        ]
                    }
                    answer = handler(event, LocalLambdaContext(function_name="market-data"))
                    invocations += 1
                    failures += len(answer["batchItemFailures"])
            waiting.clear()
    results.put(
        {
            "arrivals": table.arrivals,
            "trade_items": sum(1 for key in table.items if key[1].startswith("TRADE#")),
            "books": {
                key[0][len("SYMBOL#") :]: int(item["node_seq"]["N"])
                for key, item in table.items.items()
                if key[1] == "BOOK"
            },
            "invocations": invocations,
            "failed_records": failures,
            "cpu_s": time.process_time() - cpu0,
        }
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def offer(
    publisher: StreamPublisher, records: list[StreamRecord], rate: int, sent_at: dict[tuple[str, int], float]
) -> float:
    """Publish ``records`` at ``rate`` a second, a tick's worth at a time; returns the start time."""
    start = time.monotonic()
    done = 0
    while done < len(records):
        due = min(len(records), int((time.monotonic() - start) * rate) + 1)
        if due > done:
            chunk = records[done:due]
            now = time.monotonic()
            for record in chunk:
                sent_at[(record.partition_key, record.seq)] = now
            publisher.publish(chunk)
            done = due
        await asyncio.sleep(TICK_S)
    return start


def run(records: list[StreamRecord], rate: int, aggregated: bool) -> dict[str, Any]:
    """One run: this process offers and publishes; a child process consumes (its own core, as
    Lambda is its own machine). The child is stopped by its handle, even when the run fails."""
    context = multiprocessing.get_context("spawn")
    count = consumer_count()
    taps = [context.Queue() for _ in range(count)]
    results = context.Queue()
    children = [
        context.Process(target=consume, args=(tap, results), name=f"market-data-consumer-{n}", daemon=True)
        for n, tap in enumerate(taps)
    ]
    stream = TappedKinesis(taps)
    sink = KinesisSink(STREAM, client=stream) if aggregated else PlainSink(stream)
    sent_at: dict[tuple[str, int], float] = {}

    async def scenario() -> tuple[float, float, StreamPublisher]:
        publisher = StreamPublisher(sink, name="bench")
        publisher.start()
        start = await offer(publisher, records, rate, sent_at)
        await publisher.close(timeout=DRAIN_LIMIT_S)
        return start, time.monotonic(), publisher

    for child in children:
        child.start()
    try:
        for _ in children:
            if results.get(timeout=120) != "ready":
                raise SystemExit("a consumer process did not start")
        cpu0 = time.process_time()
        start, published, publisher = asyncio.run(scenario())
        cpu = time.process_time() - cpu0
        for tap in taps:
            tap.put(None)
        consumed = merged([results.get(timeout=120) for _ in children])
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join(timeout=10)
    summary = summarise(records, stream, publisher, sent_at, start, published, cpu, rate, consumed)
    return {**summary, "consumer_processes": count}


def stream_order_holds(stream: LimitedKinesis) -> bool:
    """Every symbol's trades on the stream are in seq order (read as a consumer reads a shard)."""
    last: dict[str, int] = {}
    for shard in stream.shards:
        for record in shard.records:
            for data in user_records(record.data):
                update = json.loads(data)
                if update["type"] == "trade":
                    if update["seq"] <= last.get(update["symbol"], 0):
                        return False
                    last[update["symbol"]] = update["seq"]
    return True


def summarise(
    records: list[StreamRecord],
    stream: LimitedKinesis,
    publisher: StreamPublisher,
    sent_at: dict[tuple[str, int], float],
    start: float,
    published: float,
    cpu: float,
    rate: int,
    consumed: dict[str, Any],
) -> dict[str, Any]:
    lags: dict[str, list[float]] = {"trade": [], "book": []}
    last_arrival = start
    for kind, symbol, seq, when in consumed["arrivals"]:
        lags[kind].append((when - sent_at[(symbol, seq)]) * 1000)
        last_arrival = max(last_arrival, when)
    books = consumed["books"]
    trades_offered = sum(1 for r in records if not r.droppable)
    books_covered = sum(1 for r in records if r.droppable and r.seq <= books.get(r.partition_key, 0))
    handled = consumed["trade_items"] + books_covered
    elapsed = last_arrival - start
    written = [s for s in stream.shards if s.per_second]
    seconds = [v for s in written for v in s.per_second.values()]
    return {
        "offered_updates": len(records),
        "offered_per_s": rate,
        "symbols": len({r.partition_key for r in records}),
        "shards_written": len(written),
        "elapsed_s": round(elapsed, 3),
        "publisher_done_s": round(published - start, 3),
        "updates_handled_per_s": round(handled / elapsed),
        "all_handled": handled == len(records),
        "publisher_cpu_us_per_update": round(cpu / len(records) * 1e6, 2),
        "consumer_cpu_us_per_update": round(consumed["cpu_s"] / len(records) * 1e6, 2),
        "trades_offered": trades_offered,
        "trades_in_table": consumed["trade_items"],
        "trades_in_order_on_stream": stream_order_holds(stream),
        "books_offered": len(records) - trades_offered,
        "books_written": len(lags["book"]),
        "books_superseded_by_publisher": publisher.stats.superseded,
        "books_dropped_by_publisher": publisher.stats.dropped,
        "kinesis_records": sum(len(s.records) for s in stream.shards),
        "records_per_shard_s_mean": round(sum(v[0] for v in seconds) / max(len(seconds), 1)),
        "bytes_per_shard_s_mean": round(sum(v[1] for v in seconds) / max(len(seconds), 1)),
        "records_per_shard_s_peak_window": max((s.peak_records for s in written), default=0),
        "bytes_per_shard_s_peak_window": max((s.peak_bytes for s in written), default=0),
        "throttled_records": stream.throttled,
        "lag_ms_trades_p50": round(percentile(lags["trade"], 0.5), 1),
        "lag_ms_trades_p99": round(percentile(lags["trade"], 0.99), 1),
        "lag_ms_books_p50": round(percentile(lags["book"], 0.5), 1),
        "lag_ms_books_p99": round(percentile(lags["book"], 0.99), 1),
        "handler_invocations": consumed["invocations"],
        "handler_failed_records": consumed["failed_records"],
    }


def bench_end_to_end() -> dict[str, Any]:
    seconds = float(os.environ.get("BENCH_E2E_SECONDS", "4"))
    scenarios = {  # the goal's rates by default; above them to show headroom
        "one_symbol": (distinct_shard_symbols(1), int(os.environ.get("BENCH_E2E_ONE_RATE", "10000"))),
        "ten_symbols": (distinct_shard_symbols(10), int(os.environ.get("BENCH_E2E_TEN_RATE", "100000"))),
    }
    results: dict[str, Any] = {"shards": SHARDS, "offer_seconds": seconds, "scenarios": {}}
    for name, (symbols, rate) in scenarios.items():
        records = tape(symbols, int(rate * seconds))
        # Interleaved: the floor, then the aggregated sink, on the same tape.
        floor = run(records, rate, aggregated=False)
        aggregated = run(records, rate, aggregated=True)
        if not (aggregated["trades_in_order_on_stream"] and aggregated["all_handled"]):
            raise SystemExit(f"{name}: trades lost or reordered: {json.dumps(aggregated)}")
        results["scenarios"][name] = {
            "symbol_names": symbols,
            "aggregated": aggregated,
            "floor_one_record_per_update": floor,
            "ratio_updates_per_s": round(
                aggregated["updates_handled_per_s"] / max(floor["updates_handled_per_s"], 1), 2
            ),
        }
    return results
