"""One Kinesis batch -> the fewest DynamoDB writes that leave the MarketData table current.

A Kinesis record is one update, or many updates of one symbol in the KPL aggregation format
(``meridian.kpl``: the nodes aggregate); both are read. Every Kinesis record is decoded on its own
(a poison record fails alone, an aggregated one whole: all its updates or none); top-of-book
updates collapse to the newest per symbol, trades are de-duplicated by key (the first copy
stays). After the batch is read, everything is written at once; items that could not be written
are reported by the sequence number of the first record behind them, so Lambda resumes the shard
from there.

Writes are idempotent: a redelivered record rewrites its item unchanged, and a trade a restarted
node re-sent (``resent``, with its re-send time) is written only if the tape lacks it, so the copy
already there keeps its time.
"""

from __future__ import annotations

from binascii import a2b_base64
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from meridian import aws_clients
from meridian.consumers import PoisonMessageError, process_batch

from .config import settings
from .items import book_item, trade_item
from .records import BookTop, TradePrint, decode_all
from .writer import MarketDataWriter, Pending, WriteReport

logger = Logger(child=True)


def trade_ttl_seconds() -> int:
    return settings().trade_ttl_days * 86_400


class MarketDataBatch:
    """What one invocation will write: trade items, and the newest book per symbol."""

    def __init__(self, trade_ttl_s: int) -> None:
        self.trade_ttl_s = trade_ttl_s
        self.records = 0
        self._trades: dict[tuple[str, int, int], tuple[Pending, bool]] = {}  # key -> (item, resent)
        self._books: dict[str, tuple[BookTop, str]] = {}

    def add(self, record: KinesisStreamRecord) -> None:
        """The batch processor's record handler: one Kinesis record, plain or aggregated (KPL)."""
        payload = record["kinesis"]  # the raw dict: no wrapper objects on the hot path
        sequence_number = payload["sequenceNumber"]
        try:
            updates = decode_all(a2b_base64(payload["data"]))
        except PoisonMessageError as exc:
            logger.warning(
                "poison record: reported as failed, goes to the on-failure destination when retries end",
                extra={"sequence_number": sequence_number, "reason": exc.reason},
            )
            raise
        self.records += len(updates)
        for update in updates:
            self._add(update, sequence_number)

    def _add(self, update: TradePrint | BookTop, sequence_number: str) -> None:
        if isinstance(update, BookTop):
            held = self._books.get(update.symbol)
            if held is None:
                self._books[update.symbol] = (update, sequence_number)
            elif update.seq >= held[0].seq:  # keep the first sequence number: a retry resumes there
                self._books[update.symbol] = (update, held[1])
            return
        key = (update.symbol, update.seq, update.trade_id)
        if key not in self._trades:
            pending = Pending(trade_item(update, self.trade_ttl_s), sequence_number)
            self._trades[key] = (pending, update.resent)

    def trades(self) -> list[Pending]:
        """Trades to write as they are (batched)."""
        return [pending for pending, resent in self._trades.values() if not resent]

    def resent_trades(self) -> list[Pending]:
        """Trades a restarted node re-sent: written only where the table lacks them."""
        return [pending for pending, resent in self._trades.values() if resent]

    def books(self) -> list[Pending]:
        return [Pending(book_item(book), first) for book, first in self._books.values()]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    response: PartialItemFailureResponse
    records: int
    report: WriteReport


def consume(event: dict[str, Any], context: Any, writer: MarketDataWriter, trade_ttl_s: int) -> BatchOutcome:
    batch = MarketDataBatch(trade_ttl_s)
    response = process_batch(event, context, batch.add, EventType.KinesisDataStreams)
    report = writer.write(batch.trades(), batch.books(), batch.resent_trades())
    failures = {str(item["itemIdentifier"]) for item in response["batchItemFailures"]}
    if report.failed:
        logger.error("market data items unwritten after retries", extra={"items": len(report.failed)})
        failures.update(pending.sequence_number for pending in report.failed)
    ordered: list[PartialItemFailures] = [{"itemIdentifier": s} for s in sorted(failures, key=int)]
    return BatchOutcome({"batchItemFailures": ordered}, batch.records, report)


_writer: MarketDataWriter | None = None


def writer_from_env() -> MarketDataWriter:
    """The container's writer on ``MARKET_DATA_TABLE`` (created on first use, then reused)."""
    global _writer  # one client per Lambda container
    if _writer is None:
        s = settings()
        client = aws_clients.client("dynamodb")
        _writer = MarketDataWriter(client, s.market_data_table, concurrency=s.market_data_write_concurrency)
    return _writer
