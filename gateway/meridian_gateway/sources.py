"""Where the gateway's updates come from: the market-data stream and its own order-updates queue.

``KinesisReader`` follows every shard of the market-data stream from its tip (``LATEST``: a client
gets the current book as a snapshot, so history is not needed), splits KPL-aggregated records
(``meridian.kpl``) and hands each update to the hub in shard order (one symbol is one partition
key, so one shard: its updates stay in order). It polls ``GetRecords`` every ``poll_interval``
seconds per shard; a reshard (a closed shard) is followed into its children.

``OrderQueue`` is this task's own SQS queue, subscribed to the order-updates topic (the bus's
``order.*`` and ``trade.executed.v1`` events, fanned out by SNS to every task's queue, raw
delivery): it is created at start and removed at stop (``TaskQueue``), so every task sees every
account's updates and passes each to that account's connections alone.

boto3 is blocking: each call runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import orjson

from meridian.events import UnknownEventError, parse_eventbridge_event
from meridian.kpl import AggregationError, user_records
from meridian_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class KinesisReader:
    def __init__(
        self,
        client: Any,
        stream: str,
        on_update: Callable[[dict[str, Any]], None],
        metrics: GatewayMetrics,
        poll_interval: float = 0.2,
    ) -> None:
        self.client, self.stream, self.on_update = client, stream, on_update
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.healthy = False

    async def run(self) -> None:
        shards = await asyncio.to_thread(self._shards)
        iterators: dict[str, str | None] = {}
        for shard in shards:
            iterators[shard] = await asyncio.to_thread(self._iterator, shard, "LATEST")
        self.healthy = True
        while True:
            for shard, iterator in list(iterators.items()):
                if iterator is None:
                    continue
                try:
                    answer = await asyncio.to_thread(
                        self.client.get_records, ShardIterator=iterator, Limit=10_000
                    )
                except Exception:  # a throttle or a network error: retry this shard next round
                    log.exception("GetRecords on %s failed", shard)
                    self.metrics.source_errors.labels("market_data").inc()
                    continue
                iterators[shard] = answer.get("NextShardIterator")
                for record in answer.get("Records", []):
                    self.deliver(record["Data"])
                if iterators[shard] is None:  # closed by a reshard: follow its children from their start
                    for child in await asyncio.to_thread(self._shards, shard):
                        iterators[child] = await asyncio.to_thread(self._iterator, child, "TRIM_HORIZON")
            await asyncio.sleep(self.poll_interval)

    def deliver(self, data: bytes) -> None:
        """One Kinesis record (plain or KPL-aggregated): each update to the hub; a bad one is skipped."""
        try:
            parts = user_records(data)
        except AggregationError as exc:
            log.warning("market-data record skipped: %s", exc.reason)
            self.metrics.source_errors.labels("market_data").inc()
            return
        for part in parts:
            try:
                update = orjson.loads(part)
                self.on_update(update)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("market-data update skipped: %s", exc)
                self.metrics.source_errors.labels("market_data").inc()
                continue
            self.metrics.source_records.labels("market_data").inc()

    def _shards(self, parent: str | None = None) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_shards").paginate(StreamName=self.stream):
            for shard in page["Shards"]:
                if parent is None:
                    if "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {}):
                        found.append(shard["ShardId"])
                elif parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
                    found.append(shard["ShardId"])
        return found

    def _iterator(self, shard: str, kind: str) -> str:
        answer = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard, ShardIteratorType=kind)
        return str(answer["ShardIterator"])


class OrderQueue:
    """Long-polls this task's queue; each event goes to ``on_event``, then is deleted."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        on_event: Callable[[Any], None],
        metrics: GatewayMetrics,
        wait_seconds: int = 20,
    ) -> None:
        self.client, self.queue_url, self.on_event = client, queue_url, on_event
        self.metrics = metrics
        self.wait_seconds = wait_seconds
        self.healthy = False

    async def run(self) -> None:
        while True:
            try:
                answer = await asyncio.to_thread(
                    self.client.receive_message,
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_seconds,
                )
            except Exception:
                log.exception("ReceiveMessage failed")
                self.healthy = False
                self.metrics.source_errors.labels("orders").inc()
                await asyncio.sleep(1.0)
                continue
            self.healthy = True
            messages = answer.get("Messages", [])
            for message in messages:
                self._deliver(message["Body"])
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                await asyncio.to_thread(
                    self.client.delete_message_batch, QueueUrl=self.queue_url, Entries=entries
                )

    def _deliver(self, body: str) -> None:
        try:
            detail = parse_eventbridge_event(_unwrap(body))
        except (UnknownEventError, ValueError) as exc:
            log.warning("order-updates message skipped: %s", exc)
            self.metrics.source_errors.labels("orders").inc()
            return
        self.metrics.source_records.labels("orders").inc()
        self.on_event(detail)


def _unwrap(body: str) -> str:
    """The EventBridge event in a message: raw delivery, or inside an SNS notification."""
    try:
        outer = json.loads(body)
    except ValueError:
        return body
    if (
        isinstance(outer, dict)
        and outer.get("Type") == "Notification"
        and isinstance(outer.get("Message"), str)
    ):
        return str(outer["Message"])
    return body


class TaskQueue:
    """This task's queue on the order-updates topic: created at start, removed at stop."""

    def __init__(self, sqs: Any, sns: Any, topic_arn: str, name: str, kms_key: str | None) -> None:
        self.sqs, self.sns, self.topic_arn, self.name, self.kms_key = sqs, sns, topic_arn, name, kms_key
        self.url = ""
        self.subscription = ""

    def create(self) -> str:
        attributes = {"MessageRetentionPeriod": "300", "ReceiveMessageWaitTimeSeconds": "20"}
        if self.kms_key:
            attributes["KmsMasterKeyId"] = self.kms_key
        else:
            attributes["SqsManagedSseEnabled"] = "true"
        self.url = self.sqs.create_queue(QueueName=self.name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}},
                },
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
        self.sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps(policy)})
        self.subscription = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return self.url

    def remove(self) -> None:
        if self.subscription:
            self.sns.unsubscribe(SubscriptionArn=self.subscription)
        if self.url:
            self.sqs.delete_queue(QueueUrl=self.url)
