"""The drop copy through a real Kinesis stream (moto server) and the local poller, into the bus.

An unreadable record in the middle of a shard: the records before it are published, the function
fails when it heads a batch, the poller bisects down to the record alone (as the event source
mapping does with BisectBatchOnFunctionError), and only that record reaches the on-failure queue.
Every readable trade is published; the node's re-sends are published again and carry the same
execution id (the ledger's key). Batches given up while the bus was unreachable are redriven from
the stream (``executions.redrive``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from executions.redrive import redrive

from meridian.consumers import parse_queued_event
from meridian.events import TradeExecuted
from meridian_local.delivery.pollers import KinesisPoller, drain, load_handler, sqs_destination
from tests.dropcopy_factories import record
from tests.integration.pipeline.sqs_harness import drain_queue

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
STREAM, BUS = "executions-it", "trading-it"


def _tap(aws: Callable[[str], Any], bus: str = BUS) -> str:
    """A queue receiving every trade.executed.v1 of ``bus`` (created here)."""
    sqs, events = aws("sqs"), aws("events")
    url = sqs.create_queue(QueueName=f"{bus}-trades")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=bus)
    events.put_rule(Name="trades", EventBusName=bus, EventPattern='{"detail-type": ["trade.executed.v1"]}')
    events.put_targets(Rule="trades", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return str(url)


def _published(sqs: Any, tap: str) -> list[tuple[str, int]]:
    found = []
    for message in drain_queue(sqs, tap):
        trade = parse_queued_event(message["Body"])
        assert isinstance(trade, TradeExecuted)
        found.append((trade.execution_id, trade.quantity))
    return found


def test_every_readable_trade_is_published_and_only_the_unreadable_record_fails(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kinesis, sqs = aws("kinesis"), aws("sqs")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    tap = _tap(aws)
    on_failure = sqs.create_queue(QueueName="executions-it-on-failure")["QueueUrl"]
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    handler = load_handler(REPO / "functions" / "executions", "app.lambda_handler")

    payloads = [json.dumps(record(n, quantity=n)).encode() for n in range(1, 41)]
    payloads.insert(17, b'{"v": 1, "execution_id": "1-999"}')  # unreadable: fails its schema
    payloads += payloads[30:33]  # the node re-sends three trades after a restart
    for data in payloads:
        kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey="AAPL")

    poller = KinesisPoller(
        kinesis,
        STREAM,
        handler,
        batch_size=10,
        max_retries=3,
        on_failure=sqs_destination(sqs, on_failure),
        function_name="executions",
        bisect_on_error=True,
    )
    drain([poller], max_rounds=200, idle_rounds=2)

    published = _published(sqs, tap)
    assert set(published) == {(f"1-{n}", n) for n in range(1, 41)}
    assert len(published) <= 40 + 3  # at most the re-sends twice
    [failure] = [json.loads(m["Body"]) for m in drain_queue(sqs, on_failure)]
    batch = failure["KinesisBatchInfo"]
    assert (batch["batchSize"], batch["startSequenceNumber"]) == (1, batch["endSequenceNumber"])
    shard = kinesis.get_shard_iterator(
        StreamName=STREAM,
        ShardId=batch["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=batch["startSequenceNumber"],
    )["ShardIterator"]
    assert kinesis.get_records(ShardIterator=shard, Limit=1)["Records"][0]["Data"] == payloads[17]


def test_batches_given_up_during_a_bus_outage_are_redriven_from_the_stream(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kinesis, sqs, events = aws("kinesis"), aws("sqs"), aws("events")
    stream = "executions-outage"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    on_failure = sqs.create_queue(QueueName="executions-outage-on-failure")["QueueUrl"]
    monkeypatch.setenv("EVENT_BUS_NAME", "trading-outage")  # no such bus yet: every PutEvents fails
    handler = load_handler(REPO / "functions" / "executions", "app.lambda_handler")
    for n in range(1, 16):
        kinesis.put_record(StreamName=stream, Data=json.dumps(record(n)).encode(), PartitionKey="AAPL")
    poller = KinesisPoller(
        kinesis, stream, handler, batch_size=10, max_retries=1, on_failure=sqs_destination(sqs, on_failure)
    )
    drain([poller], max_rounds=20, idle_rounds=2)
    assert poller.stats.sent_to_on_failure == 2  # both batches, after their retry

    tap = _tap(aws, "trading-outage")  # the bus is back
    results = redrive(sqs, kinesis, events, on_failure, "trading-outage")
    assert [(r.records, r.published, r.problem) for r in results] == [(10, 10, ""), (5, 5, "")]
    assert sorted(_published(sqs, tap)) == sorted((f"1-{n}", 10) for n in range(1, 16))
    assert drain_queue(sqs, on_failure) == []  # redriven messages are deleted
