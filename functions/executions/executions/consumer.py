"""One Kinesis batch of the executions stream (the nodes' drop copy) -> ``trade.executed.v1`` events.

The drop copy is the only source of ``trade.executed.v1``: each record becomes one event whose
event id is the execution id, published on the trading bus in PutEvents calls of 10, in stream
order. Delivery is at least once all the way (the node re-sends the trades of replayed input after
a crash, a retried batch re-publishes what it had already sent), so every consumer of the event is
idempotent on the execution id; a batch publishes a repeated execution id once.

Failures, and why each is handled as it is:

* **An unreadable record** (not JSON, not the drop-copy schema, an unknown version ``v``) can never
  succeed. Skipping it (log and succeed) would lose a trade with nothing but a log line to show for
  it, and blocking on it would stop every later trade of its shard. So its reason is logged, the
  records before it are published, and it is reported as the batch item failure: Lambda resumes
  the shard at it. When it heads the batch, the invocation raises instead: a partial failure at
  the first record would make Lambda retry the same batch and, once the retries are spent,
  discard the good records behind it too, whereas a function error lets
  ``BisectBatchOnFunctionError`` halve the batch (which costs no retries) until the bad record is
  alone. Only that one-record batch exhausts ``MaximumRetryAttempts`` and goes to the mapping's
  on-failure destination (the shard and sequence number; the record stays readable in the stream
  for its retention), and the shard moves on.
* **Events EventBridge still refuses** after the shared publisher's retries (throttling, an
  outage) are reported by the sequence number of the first such record; the chunks after it are not
  sent, since Lambda re-delivers from there anyway. An aggregated record is re-delivered whole, so
  the trades before the refused one in it are published again (consumers are idempotent).
"""

from __future__ import annotations

from binascii import a2b_base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from meridian.consumers import PoisonMessageError, process_batch
from meridian.dropcopy import DropCopyError, parse_drop_copies
from meridian.eventbridge import put_events_with_retries
from meridian.events import TradeExecuted, put_events_entry

logger = Logger(child=True)


class UnreadableRecordAtHeadError(RuntimeError):
    """The batch's first record is not a drop-copy record: fail the invocation so Lambda bisects."""


@dataclass
class ExecutionsBatch:
    """What one invocation read: each readable record's events, by sequence number, in stream order.

    A Kinesis record holds one drop-copy record, or many of one symbol in the KPL aggregation
    format (``meridian.kpl``); an aggregated record is readable only when all of them are.
    """

    trades: dict[str, list[TradeExecuted]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # unreadable records: sequence number -> why

    def add(self, record: KinesisStreamRecord) -> None:
        """The batch processor's record handler."""
        payload = record["kinesis"]
        sequence_number = str(payload["sequenceNumber"])
        try:
            trades = [copy.trade_executed() for copy in parse_drop_copies(a2b_base64(payload["data"]))]
        except (DropCopyError, ValueError) as exc:  # a2b_base64 raises binascii.Error, a ValueError
            reason = exc.reason if isinstance(exc, DropCopyError) else f"data is not base64: {exc}"
            self.reasons[sequence_number] = reason
            logger.warning(
                "unreadable drop-copy record: it goes to the on-failure destination when its retries end",
                extra={"sequence_number": sequence_number, "reason": reason},
            )
            raise PoisonMessageError(reason) from None
        self.trades[sequence_number] = trades


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    response: PartialItemFailureResponse
    records: int
    published: int
    duplicates: int
    unreadable: int
    undelivered: int


def consume(
    event: dict[str, Any],
    context: Any,
    events_client: Any,
    bus_name: str,
    sleep: Callable[[float], None] | None = None,
) -> BatchOutcome:
    """Publish the batch's trades; the response names the record Lambda must resume from, if any."""
    batch = ExecutionsBatch()
    process_batch(event, context, batch.add, EventType.KinesisDataStreams)
    order = [str(record["kinesis"]["sequenceNumber"]) for record in event.get("Records", [])]
    first_unreadable = next((i for i, s in enumerate(order) if s in batch.reasons), len(order))
    if first_unreadable == 0 and order:
        raise UnreadableRecordAtHeadError(
            f"record {order[0]} heads the batch and is unreadable: {batch.reasons[order[0]]}"
        )
    publish: list[tuple[str, TradeExecuted]] = []
    seen: set[str] = set()
    readable = 0
    for sequence_number in order[:first_unreadable]:
        for trade in batch.trades[sequence_number]:
            readable += 1
            if trade.execution_id not in seen:
                seen.add(trade.execution_id)
                publish.append((sequence_number, trade))
    entries = [put_events_entry(trade, bus_name) for _, trade in publish]
    kwargs = {} if sleep is None else {"sleep": sleep}
    delivery = put_events_with_retries(events_client, entries, stop_at_first_failure=True, **kwargs)
    resume_from: str | None = None
    if delivery.undelivered:
        first = delivery.undelivered[0]
        resume_from = publish[first.position][0]
        logger.error(
            "trade events undelivered after retries: the shard resumes at the first",
            extra={"sequence_number": resume_from, "events": len(delivery.undelivered), "error": first.error},
        )
    elif first_unreadable < len(order):
        resume_from = order[first_unreadable]
    return BatchOutcome(
        response={"batchItemFailures": [] if resume_from is None else [{"itemIdentifier": resume_from}]},
        records=sum(len(trades) for trades in batch.trades.values()) + len(batch.reasons),
        published=delivery.accepted,
        duplicates=readable - len(publish),
        unreadable=len(batch.reasons),
        undelivered=len(delivery.undelivered),
    )
