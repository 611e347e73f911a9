"""Local event source mappings: deliver SQS messages and Kinesis records to a function's handler.

They do what a Lambda event source mapping does, against any SQS/Kinesis endpoint (moto in
server mode for ``make run`` and the integration tests):

* SQS: receive a batch, invoke, delete the messages that succeeded. With partial batch responses
  only the ``batchItemFailures`` stay on the queue; an invocation error keeps the whole batch.
  Failed messages come back after their visibility timeout, and the queue's redrive policy moves
  them to the DLQ after ``maxReceiveCount`` receives.
* Kinesis: read each shard in order from a checkpoint; a partial failure moves the checkpoint to the
  lowest failed sequence number and retries from there; after ``max_retries`` the batch's
  description goes to the on-failure destination (an SQS queue) and the shard moves on. With
  ``bisect_on_error`` (``BisectBatchOnFunctionError``) an invocation error splits the batch in two
  before retrying, which costs no retry, so only a one-record batch spends the retries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from meridian_local.delivery.lambda_adapter import FunctionSource, import_handler
from meridian_local.delivery.lambda_events import LocalLambdaContext, kinesis_record, sqs_record

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


class Poller(Protocol):
    def poll_once(self) -> int:
        """Deliver at most one batch per source; return how many records were delivered."""
        ...

    def poll_due(self, now: float, least_s: float, most_s: float) -> int:
        """As :meth:`poll_once`, reading only the sources whose pause (:class:`Pacing`) is over."""
        ...


@dataclass
class Pacing:
    """When a source (a shard, a queue) is read next. A read that returns nothing doubles its pause,
    from ``least_s`` up to ``most_s``; a read that returns records sets it back to ``least_s``, so a
    busy source is read every ``least_s`` and its records come in batches (the template's event
    source mappings wait up to a second to fill theirs). A read that fills its batch is followed at
    once, as Lambda invokes a mapping's function as soon as a batch is full: a source that takes
    more than a batch per ``least_s`` does not fall behind (a backlog also makes every read of an
    SQS queue on moto slower, which lists the queue's messages). Each source is paced on its own,
    as Lambda reads each shard and queue: a busy shard is not read less often because another is
    idle, and an idle one is not read every round because another is busy."""

    pause_s: float = 0.0
    next_at: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def read(self, records: int, now: float, least_s: float, most_s: float, full: bool = False) -> None:
        if full:
            self.pause_s, self.next_at = least_s, now
            return
        self.pause_s = least_s if records else min(max(self.pause_s * 2, least_s), most_s)
        self.next_at = now + self.pause_s


@dataclass
class PollStats:
    invocations: int = 0
    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_errors: int = 0
    sent_to_on_failure: int = 0


def _failed_ids(response: Any) -> set[str] | None:
    """Item identifiers of a partial batch response; None when the response reports none."""
    if not isinstance(response, dict) or "batchItemFailures" not in response:
        return None
    return {str(item["itemIdentifier"]) for item in response["batchItemFailures"]}


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        wait_time_s: int = 0,
        retry_visibility_s: int | None = None,
        report_batch_item_failures: bool = True,
        function_name: str = "local",
    ) -> None:
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.batch_size, self.wait_time_s = batch_size, wait_time_s
        self.retry_visibility_s = retry_visibility_s
        self.report_batch_item_failures = report_batch_item_failures
        self.function_name = function_name
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.stats = PollStats()
        self.pacing = Pacing()

    def poll_due(self, now: float, least_s: float, most_s: float) -> int:
        if not self.pacing.due(now):
            return 0
        delivered = self.poll_once()
        self.pacing.read(delivered, now, least_s, most_s, full=delivered >= self.batch_size)
        return delivered

    def poll_once(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        self.stats.invocations += 1
        self.stats.delivered += len(messages)
        try:
            response = self.handler(event, LocalLambdaContext(function_name=self.function_name))
        except Exception:
            log.exception("%s: invocation failed; the whole batch will be retried", self.function_name)
            self.stats.handler_errors += 1
            failed = {m["MessageId"] for m in messages}
        else:
            reported = _failed_ids(response) if self.report_batch_item_failures else None
            failed = reported or set()
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        self.stats.succeeded += len(done)
        self.stats.failed += len(retry)
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if retry and self.retry_visibility_s is not None:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_visibility_s,
                    }
                    for i, m in enumerate(retry)
                ],
            )
        return len(messages)


@dataclass
class _ShardState:
    shard_id: str
    iterator: str | None = None
    retry_from: str | None = None  # sequence number to re-read from after a failure
    attempts: int = 0
    limit: int | None = None  # a bisected batch's size, until it is done
    pacing: Pacing = field(default_factory=Pacing)


class KinesisPoller:
    def __init__(
        self,
        kinesis: Any,
        stream_name: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        max_retries: int = 2,
        starting_position: str = "TRIM_HORIZON",
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        function_name: str = "local",
        bisect_on_error: bool = False,
    ) -> None:
        self.kinesis, self.stream_name, self.handler = kinesis, stream_name, handler
        self.batch_size, self.max_retries = batch_size, max_retries
        self.bisect_on_error = bisect_on_error
        self.on_failure, self.function_name = on_failure, function_name
        summary = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]
        self.stream_arn = str(summary["StreamARN"])
        self.shards = [_ShardState(shard["ShardId"]) for shard in summary["Shards"]]
        for shard in self.shards:
            shard.iterator = self._iterator(shard.shard_id, starting_position)
        self.stats = PollStats()

    def _iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        args: dict[str, Any] = {
            "StreamName": self.stream_name,
            "ShardId": shard_id,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            args["StartingSequenceNumber"] = sequence
        return str(self.kinesis.get_shard_iterator(**args)["ShardIterator"])

    def poll_once(self) -> int:
        return sum(self._poll_shard(shard) for shard in self.shards)

    def poll_due(self, now: float, least_s: float, most_s: float) -> int:
        delivered = 0
        for shard in self.shards:
            if shard.pacing.due(now):
                limit = shard.limit or self.batch_size
                records = self._poll_shard(shard)
                full = records >= limit and shard.retry_from is None  # a failed batch waits for its retry
                shard.pacing.read(records, now, least_s, most_s, full=full)
                delivered += records
        return delivered

    def _poll_shard(self, shard: _ShardState) -> int:
        if shard.retry_from is not None:
            shard.iterator = self._iterator(shard.shard_id, "AT_SEQUENCE_NUMBER", shard.retry_from)
        if shard.iterator is None:
            return 0
        answer = self.kinesis.get_records(ShardIterator=shard.iterator, Limit=shard.limit or self.batch_size)
        records = answer.get("Records", [])
        if not records:
            shard.iterator = answer.get("NextShardIterator")
            return 0
        event = {
            "Records": [
                kinesis_record(
                    r["Data"],
                    r["PartitionKey"],
                    r["SequenceNumber"],
                    self.stream_arn,
                    shard.shard_id,
                    r["ApproximateArrivalTimestamp"].timestamp(),
                )
                for r in records
            ]
        }
        self.stats.invocations += 1
        self.stats.delivered += len(records)
        failed_from, errored = self._invoke(event, records)
        if failed_from is None:
            self.stats.succeeded += len(records)
            shard.iterator, shard.retry_from, shard.attempts = answer.get("NextShardIterator"), None, 0
            shard.limit = None
            return len(records)
        if errored and self.bisect_on_error and len(records) > 1:
            shard.limit, shard.retry_from = len(records) // 2, failed_from  # costs no retry
            return len(records)
        shard.attempts += 1
        if shard.attempts > self.max_retries:
            self._give_up(shard, records, failed_from)
            shard.iterator, shard.retry_from, shard.attempts = answer.get("NextShardIterator"), None, 0
            shard.limit = None
        else:
            shard.retry_from = failed_from
        return len(records)

    def _invoke(self, event: dict[str, Any], records: Sequence[dict[str, Any]]) -> tuple[str | None, bool]:
        """The sequence number to retry from (None when the whole batch succeeded), and whether
        the invocation itself failed."""
        try:
            response = self.handler(event, LocalLambdaContext(function_name=self.function_name))
        except Exception:
            log.exception("%s: invocation failed; retrying the batch", self.function_name)
            self.stats.handler_errors += 1
            return str(records[0]["SequenceNumber"]), True
        failed = _failed_ids(response)
        if not failed:
            return None, False
        self.stats.failed += len(failed)
        return min(failed, key=int), False

    def _give_up(self, shard: _ShardState, records: Sequence[dict[str, Any]], failed_from: str) -> None:
        self.stats.sent_to_on_failure += 1
        description = {
            "requestContext": {
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": shard.attempts,
            },
            "KinesisBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": failed_from,
                "endSequenceNumber": str(records[-1]["SequenceNumber"]),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        log.warning(
            "%s: retries exhausted on %s; batch sent to on-failure", self.function_name, shard.shard_id
        )
        if self.on_failure is not None:
            self.on_failure(description)


def sqs_destination(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that sends the batch description to an SQS queue."""

    def send(description: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(description))

    return send


def drain(pollers: Sequence[Poller], max_rounds: int = 1000, idle_rounds: int = 1) -> int:
    """Poll until ``idle_rounds`` consecutive rounds deliver nothing; return records delivered."""
    total, idle = 0, 0
    for _ in range(max_rounds):
        delivered = sum(p.poll_once() for p in pollers)
        total += delivered
        idle = idle + 1 if delivered == 0 else 0
        if idle >= idle_rounds:
            break
    return total


class PollingThread(threading.Thread):
    """Runs pollers in the background (``make run``) until :meth:`stop`.

    Each source (shard, queue) is paced on its own (:class:`Pacing`): an empty read doubles its
    pause from ``idle_sleep_s`` up to ``max_idle_sleep_s`` (Lambda polls an idle Kinesis shard about
    once a second), a delivery sets it back to ``idle_sleep_s``. A round that delivers nothing waits
    ``idle_sleep_s``.
    Polling moto without pause kept half a core busy; pacing all sources together (any delivery
    reset them all) had every idle shard and queue read 20 times a second under load.
    """

    def __init__(
        self, pollers: Sequence[Poller], idle_sleep_s: float = 0.2, max_idle_sleep_s: float | None = None
    ) -> None:
        super().__init__(name="meridian-pollers", daemon=True)
        self.pollers, self.idle_sleep_s = list(pollers), idle_sleep_s
        self.max_idle_sleep_s = idle_sleep_s if max_idle_sleep_s is None else max_idle_sleep_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            delivered = 0
            now = time.monotonic()
            for poller in self.pollers:
                try:
                    delivered += poller.poll_due(now, self.idle_sleep_s, self.max_idle_sleep_s)
                except Exception:
                    log.exception("poller failed; continuing")
            if not delivered:
                self._stopping.wait(self.idle_sleep_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.join(timeout)


def load_handler(code_dir: Path | str, handler: str) -> Handler:
    """Import a function's handler (``app.lambda_handler``) from its code folder, as Lambda does."""
    folder = Path(code_dir).resolve()
    source = FunctionSource(logical_id=folder.name, handler=handler, code_dir=folder)
    return import_handler(folder.name, source)
