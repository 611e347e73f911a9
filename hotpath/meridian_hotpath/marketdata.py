"""Market data off the matching path: trades and top-of-book changes, batched to a sink.

The node hands records to ``MarketDataPublisher`` after their inputs are durable; handing over is a
deque append, so matching never waits on the sink. A background task drains the queues in batches
and calls the sink in a worker thread (sinks do blocking network I/O). Under pressure the oldest
top-of-book updates are dropped (a newer one supersedes them); trades are never dropped: if the
sink fails they are counted and kept, in order, for the next attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meridian.protocol import Fill

log = logging.getLogger(__name__)

KINESIS_BATCH_LIMIT = 500
DEFAULT_TOP_OF_BOOK_LIMIT = 10_000
DEFAULT_BATCH_SIZE = KINESIS_BATCH_LIMIT


@dataclass(frozen=True, slots=True)
class MarketDataRecord:
    """One record for the stream; ``payload`` is the JSON object consumers read."""

    symbol: str
    payload: dict[str, int | str]

    @property
    def is_trade(self) -> bool:
        return self.payload["type"] == "trade"

    def to_json(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


def trade_record(fill: Fill, timestamp_ns: int) -> MarketDataRecord:
    # Public market data: price, size and side, never the accounts or client order ids behind them.
    return MarketDataRecord(
        fill.symbol,
        {
            "type": "trade",
            "symbol": fill.symbol,
            "seq": fill.seq,
            "trade_id": fill.trade_id,
            "price": fill.price,
            "quantity": fill.quantity,
            "aggressor_side": fill.aggressor_side,
            "timestamp_ns": timestamp_ns,
        },
    )


def top_of_book_record(
    symbol: str, seq: int, top: tuple[int, int, int, int], timestamp_ns: int
) -> MarketDataRecord:
    bid_price, bid_quantity, ask_price, ask_quantity = top
    return MarketDataRecord(
        symbol,
        {
            "type": "top_of_book",
            "symbol": symbol,
            "seq": seq,
            "bid_price": bid_price,
            "bid_quantity": bid_quantity,
            "ask_price": ask_price,
            "ask_quantity": ask_quantity,
            "timestamp_ns": timestamp_ns,
        },
    )


class MarketDataSink(Protocol):
    def put(self, records: Sequence[MarketDataRecord]) -> list[MarketDataRecord]:
        """Deliver ``records``; return those that could not be delivered (empty on success)."""


class InMemorySink:
    """Keeps what it receives; ``fail_next`` makes the next calls reject everything (for tests)."""

    def __init__(self) -> None:
        self.records: list[MarketDataRecord] = []
        self.calls = 0
        self.fail_next = 0

    def put(self, records: Sequence[MarketDataRecord]) -> list[MarketDataRecord]:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            return list(records)
        self.records.extend(records)
        return []


class KinesisSink:
    """``PutRecords`` to a Kinesis stream, partition key = symbol; retries only the failed records."""

    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None:
            # boto3 adds about 0.25 s to every node start; only a node publishing to Kinesis pays it.
            import boto3  # noqa: PLC0415

            client = boto3.client("kinesis")
        self.stream_name = stream_name
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._sleep = sleep

    def put(self, records: Sequence[MarketDataRecord]) -> list[MarketDataRecord]:
        failed: list[MarketDataRecord] = []
        for start in range(0, len(records), KINESIS_BATCH_LIMIT):
            failed += self._put_chunk(list(records[start : start + KINESIS_BATCH_LIMIT]))
        return failed

    def _put_chunk(self, pending: list[MarketDataRecord]) -> list[MarketDataRecord]:
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(self.base_delay * 2 ** (attempt - 1))
            pending = self._attempt(pending)
            if not pending:
                return []
        return pending

    def _attempt(self, records: list[MarketDataRecord]) -> list[MarketDataRecord]:
        entries = [{"Data": record.to_json(), "PartitionKey": record.symbol} for record in records]
        try:
            response = self.client.put_records(StreamName=self.stream_name, Records=entries)
        except Exception as exc:  # throttling, network, credentials: the whole call failed
            log.warning("kinesis put_records failed for %d records: %r", len(records), exc)
            return records
        if not response.get("FailedRecordCount"):
            return []
        # Results are positional: the i-th result answers the i-th record sent.
        return [
            record
            for record, result in zip(records, response["Records"], strict=True)
            if "ErrorCode" in result
        ]


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    top_of_book_dropped: int = 0
    trade_failures: int = 0  # trades a sink call failed to deliver (each attempt counts)
    sink_errors: int = 0


class MarketDataPublisher:
    def __init__(
        self,
        sink: MarketDataSink,
        top_of_book_limit: int = DEFAULT_TOP_OF_BOOK_LIMIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_delay: float = 0.5,
    ) -> None:
        self.sink = sink
        self.stats = PublisherStats()
        self._trades: deque[MarketDataRecord] = deque()
        self._tops: deque[MarketDataRecord] = deque(maxlen=top_of_book_limit)
        self._batch_size = batch_size
        self._retry_delay = retry_delay
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def backlog(self) -> tuple[int, int]:
        """(trades waiting, top-of-book updates waiting)."""
        return len(self._trades), len(self._tops)

    def publish(self, records: Sequence[MarketDataRecord]) -> None:
        """Queue records for the background task; never blocks."""
        for record in records:
            if record.is_trade:
                self._trades.append(record)
            else:
                if len(self._tops) == self._tops.maxlen:
                    self.stats.top_of_book_dropped += 1  # the deque drops the oldest
                self._tops.append(record)
        if records:
            self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="market-data-publisher")

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                left = self.backlog
                log.error("market data: stopped with %d trades and %d updates undelivered", *left)

    async def _run(self) -> None:
        while True:
            if not self._trades and not self._tops:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            try:
                failed = await asyncio.to_thread(self.sink.put, batch)
            except Exception:
                log.exception("market data sink raised")
                self.stats.sink_errors += 1
                failed = batch
            self._settle(batch, failed)
            if failed:
                await asyncio.sleep(self._retry_delay)

    def _take_batch(self) -> list[MarketDataRecord]:
        batch: list[MarketDataRecord] = []
        while self._trades and len(batch) < self._batch_size:
            batch.append(self._trades.popleft())
        while self._tops and len(batch) < self._batch_size:
            batch.append(self._tops.popleft())
        return batch

    def _settle(self, batch: list[MarketDataRecord], failed: list[MarketDataRecord]) -> None:
        self.stats.published += len(batch) - len(failed)
        failed_trades = [record for record in failed if record.is_trade]
        self.stats.trade_failures += len(failed_trades)
        # Failed trades go back to the front, in their original order, ahead of newer trades.
        self._trades.extendleft(reversed(failed_trades))
        self.stats.top_of_book_dropped += len(failed) - len(failed_trades)
