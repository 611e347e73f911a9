"""Batched, retried writes to the MarketData table.

Trades go out through ``BatchWriteItem`` in chunks of 25 (their keys are unique per trade, so a
replayed batch rewrites the same items unchanged); ``UnprocessedItems`` are retried with
exponential backoff and jitter. A book is written with a conditional ``PutItem`` (``node_seq``
must grow), so a replayed or reordered batch can never put an older book over a newer one. Seqs
are one node's: a book from another node (the symbol moved shards, ``meridian.symbol_move``)
replaces the stored one only when that one is halted and the new one trades, so the old owner's
last records never hide the new owner's book, whatever order they arrive in. A trade
a restarted node re-sent is written with a conditional ``PutItem`` too (only if its item does not
exist): it differs from the copy already there in its time alone, and that copy stays. What still
fails is returned, with the Kinesis sequence numbers behind it, for the caller to report.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from meridian.aws_clients import error_code

BATCH_WRITE_LIMIT = 25
Item = dict[str, Any]
NEWER_BOOK = "attribute_not_exists(node_seq) OR node_seq < :seq"
SAME_NODE_NEWER = "(attribute_not_exists(node) OR node = :node) AND node_seq < :seq"
NEWER_HALTED_BOOK = f"attribute_not_exists(node_seq) OR ({SAME_NODE_NEWER})"
NEWER_OR_TAKEN_OVER_BOOK = f"{NEWER_HALTED_BOOK} OR (node <> :node AND halted = :true)"
NEW_ITEM = "attribute_not_exists(sk)"


class DynamoDBClient(Protocol):
    """The two low-level DynamoDB calls the writer makes (boto3's client, or a counting fake)."""

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """An item to write and the first Kinesis sequence number behind it (where a retry resumes)."""

    item: Item
    sequence_number: str


@dataclass(slots=True)
class WriteReport:
    batch_calls: int = 0
    put_calls: int = 0
    items_written: int = 0
    stale_books_skipped: int = 0
    known_trades_skipped: int = 0  # re-sent trades the table already held
    failed: list[Pending] = field(default_factory=list)

    def merge(self, other: WriteReport) -> None:
        self.batch_calls += other.batch_calls
        self.put_calls += other.put_calls
        self.items_written += other.items_written
        self.stale_books_skipped += other.stale_books_skipped
        self.known_trades_skipped += other.known_trades_skipped
        self.failed += other.failed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


class MarketDataWriter:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client, self.table_name = client, table_name
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency or DEFAULT_CONCURRENCY
        self._sleep = sleep

    def write(
        self, trades: Sequence[Pending], books: Sequence[Pending], resent_trades: Sequence[Pending] = ()
    ) -> WriteReport:
        """Write every trade (batched), book (if newer) and re-sent trade (if new); report calls and
        what failed."""
        calls: list[Callable[[], WriteReport]] = [
            partial(self._write_chunk, trades[i : i + BATCH_WRITE_LIMIT])
            for i in range(0, len(trades), BATCH_WRITE_LIMIT)
        ]
        calls += [partial(self._put_book, book) for book in books]
        calls += [partial(self._put_resent_trade, trade) for trade in resent_trades]
        lanes = min(self.concurrency, len(calls))
        report = WriteReport()
        if lanes <= 1:
            report.merge(_run_all(calls))
        else:  # each call waits on the network: overlap them, one lane of calls per thread
            with ThreadPoolExecutor(max_workers=lanes) as pool:
                for result in pool.map(_run_all, [calls[lane::lanes] for lane in range(lanes)]):
                    report.merge(result)
        return report

    def _write_chunk(self, chunk: Sequence[Pending]) -> WriteReport:
        report = WriteReport()
        by_key = {(p.item["pk"]["S"], p.item["sk"]["S"]): p for p in chunk}
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": p.item}} for p in chunk]
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self.client.batch_write_item(RequestItems={self.table_name: requests})
            except Exception as exc:
                if not _retryable(exc):
                    raise
                unprocessed = requests
            else:
                unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
            report.batch_calls += 1
            report.items_written += len(requests) - len(unprocessed)
            requests = unprocessed
            if not requests:
                return report
            if attempt < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        for request in requests:
            item = request["PutRequest"]["Item"]
            report.failed.append(by_key[(item["pk"]["S"], item["sk"]["S"])])
        return report

    def _put_book(self, book: Pending) -> WriteReport:
        item = book.item
        values: dict[str, Any] = {":seq": item["node_seq"]}
        condition = NEWER_BOOK
        if "node" in item:
            values[":node"] = item["node"]
            condition = NEWER_HALTED_BOOK
            if not item["halted"]["BOOL"]:
                values[":true"] = {"BOOL": True}
                condition = NEWER_OR_TAKEN_OVER_BOOK
        report, held = self._put_unless_held(
            book, ConditionExpression=condition, ExpressionAttributeValues=values
        )
        report.stale_books_skipped += held  # the table already holds this book or a newer one
        return report

    def _put_resent_trade(self, trade: Pending) -> WriteReport:
        report, held = self._put_unless_held(trade, ConditionExpression=NEW_ITEM)
        report.known_trades_skipped += held  # the first copy stays, with its time
        return report

    def _put_unless_held(self, pending: Pending, **condition: Any) -> tuple[WriteReport, bool]:
        """A conditional ``PutItem`` with retries; True when the condition failed (nothing to do)."""
        report = WriteReport()
        for attempt in range(1, self.retry.attempts + 1):
            report.put_calls += 1
            try:
                self.client.put_item(TableName=self.table_name, Item=pending.item, **condition)
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return report, True
                if not _retryable(exc):
                    raise
                if attempt < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt))
                continue
            report.items_written += 1
            return report, False
        report.failed.append(pending)
        return report, False


def _run_all(calls: Sequence[Callable[[], WriteReport]]) -> WriteReport:
    report = WriteReport()
    for call in calls:
        report.merge(call())
    return report


DEFAULT_CONCURRENCY = 8  # parallel write lanes (MARKET_DATA_WRITE_CONCURRENCY: ``config``)

_RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


def _retryable(exc: Exception) -> bool:
    """Throttling, server and connection errors are retried; a bad request or a missing table is not."""
    return error_code(exc) in _RETRYABLE or isinstance(exc, (HTTPClientError, BotoConnectionError))
