"""The local pollers pace each source on its own: a shard or queue that returned nothing is read
again only after its pause (doubling up to the most), one that returned records after the least."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meridian_local.delivery.pollers import KinesisPoller, Pacing, SqsPoller


class FakeKinesis:
    """Two shards; ``pending`` holds the records each will return on its next read."""

    def __init__(self) -> None:
        self.pending: dict[str, list[dict[str, Any]]] = {"shard-0": [], "shard-1": []}
        self.reads: list[str] = []
        self.sequence = 0

    def describe_stream(self, StreamName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        shards = [{"ShardId": shard} for shard in self.pending]
        return {"StreamDescription": {"StreamARN": "arn:stream", "Shards": shards}}

    def get_shard_iterator(self, **args: Any) -> dict[str, Any]:
        return {"ShardIterator": args["ShardId"]}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        self.reads.append(ShardIterator)
        records, self.pending[ShardIterator] = self.pending[ShardIterator], []
        return {"Records": records, "NextShardIterator": ShardIterator}

    def put(self, shard: str) -> None:
        self.sequence += 1
        self.pending[shard].append(
            {
                "Data": b"{}",
                "PartitionKey": "k",
                "SequenceNumber": str(self.sequence),
                "ApproximateArrivalTimestamp": datetime.now(UTC),
            }
        )


def test_a_busy_shard_is_read_every_round_and_an_idle_one_after_its_pause() -> None:
    kinesis = FakeKinesis()
    delivered: list[int] = []
    poller = KinesisPoller(kinesis, "s", lambda event, context: delivered.append(len(event["Records"])))
    now = 0.0
    for _ in range(40):  # 2 s of 50 ms rounds, a record arriving on shard-0 before each
        kinesis.put("shard-0")
        poller.poll_due(now, 0.05, 1.0)
        now += 0.05
    assert kinesis.reads.count("shard-0") == 40  # read each round, none left waiting
    assert sum(delivered) == 40
    # shard-1 returned nothing: read at 0, then after pauses of 0.05, 0.1, 0.2, 0.4, 0.8, 1.0...
    assert kinesis.reads.count("shard-1") == 6
    kinesis.put("shard-1")
    now += 1.0  # its pause is over: read, and then every round while it has records
    assert poller.poll_due(now, 0.05, 1.0) == 1
    kinesis.put("shard-1")
    assert poller.poll_due(now + 0.01, 0.05, 1.0) == 0  # a busy shard waits the least pause
    assert poller.poll_due(now + 0.05, 0.05, 1.0) == 1
    # poll_once (drain in tests) still reads every shard whatever its pacing
    before = len(kinesis.reads)
    poller.poll_once()
    assert len(kinesis.reads) == before + 2


def test_a_queue_is_paced_as_a_shard_is() -> None:
    class FakeSqs:
        def __init__(self) -> None:
            self.receives = 0

        def get_queue_attributes(self, **args: Any) -> dict[str, Any]:
            return {"Attributes": {"QueueArn": "arn:queue"}}

        def receive_message(self, **args: Any) -> dict[str, Any]:
            self.receives += 1
            return {}

    sqs = FakeSqs()
    poller = SqsPoller(sqs, "url", lambda event, context: None)
    for step in range(20):  # 1 s of 50 ms rounds on an empty queue
        poller.poll_due(step * 0.05, 0.05, 0.2)
    # read at 0, 0.05, 0.15, 0.35, 0.55, 0.75, 0.95: the pause grows to 0.2 and stays there
    assert sqs.receives == 7


def test_pacing_doubles_to_the_most_and_returns_to_the_least_on_records() -> None:
    pacing = Pacing()
    pauses = []
    for _ in range(6):
        pacing.read(0, 10.0, 0.05, 0.3)
        pauses.append(pacing.pause_s)
    assert pauses == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]
    assert not pacing.due(10.2)
    pacing.read(3, 10.0, 0.05, 0.3)
    assert (pacing.pause_s, pacing.due(10.0), pacing.due(10.05)) == (0.05, False, True)


def test_a_full_batch_is_followed_at_once() -> None:
    pacing = Pacing()
    pacing.read(10, 5.0, 0.05, 1.0, full=True)
    assert pacing.due(5.0)
    pacing.read(4, 5.0, 0.05, 1.0)
    assert (pacing.due(5.0), pacing.due(5.05)) == (False, True)


def test_a_queue_with_a_backlog_is_read_until_it_returns_less_than_a_batch() -> None:
    class BackloggedSqs:
        def __init__(self, waiting: int) -> None:
            self.waiting, self.receives = waiting, 0

        def get_queue_attributes(self, **args: Any) -> dict[str, Any]:
            return {"Attributes": {"QueueArn": "arn:queue"}}

        def receive_message(self, **args: Any) -> dict[str, Any]:
            self.receives += 1
            count = min(self.waiting, args["MaxNumberOfMessages"])
            self.waiting -= count
            first = self.waiting
            return {
                "Messages": [
                    {
                        "MessageId": str(first + n),
                        "ReceiptHandle": str(first + n),
                        "Body": "{}",
                        "Attributes": {},
                    }
                    for n in range(count)
                ]
            }

        def delete_message_batch(self, **args: Any) -> dict[str, Any]:
            return {}

    sqs = BackloggedSqs(35)
    poller = SqsPoller(sqs, "url", lambda event, context: None, batch_size=10)
    # at one instant: 10, 10, 10 (each full: read again at once), then 5 (not full: wait)
    assert [poller.poll_due(7.0, 0.05, 1.0) for _ in range(5)] == [10, 10, 10, 5, 0]
    assert sqs.receives == 4


def test_a_full_shard_batch_that_failed_waits_for_its_retry() -> None:
    kinesis = FakeKinesis()
    for _ in range(3):
        kinesis.put("shard-0")
    failing = {"fail": True}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if failing["fail"]:
            return {
                "batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]
            }
        return {"batchItemFailures": []}

    poller = KinesisPoller(kinesis, "s", handler, batch_size=3, max_retries=5)
    assert poller.poll_due(1.0, 0.05, 1.0) == 3  # a full batch, but it failed
    assert kinesis.reads.count("shard-0") == 1
    poller.poll_due(1.0, 0.05, 1.0)
    assert kinesis.reads.count("shard-0") == 1  # not read again at once: it waits the least pause
