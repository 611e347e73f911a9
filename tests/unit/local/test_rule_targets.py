"""Rule targets moto cannot deliver, forwarded from their bridge queues: an SNS target gets a batch's
events in PublishBatch calls, each event one message, and an event that was not published is
reported failed (so its message comes back for a retry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian_local.delivery.rule_targets import SNS_BATCH, forwarder

TOPIC = "arn:aws:sns:us-east-1:123456789012:updates"


def records(events: list[Any]) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{n}", "body": json.dumps(e)} for n, e in enumerate(events)]}


@pytest.fixture
def subscriber() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="updates")["TopicArn"]
        url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        yield sns, sqs, url


def received(sqs: Any, url: str) -> list[Any]:
    bodies: list[Any] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def test_each_event_of_a_batch_reaches_the_topic_once(subscriber: tuple[Any, Any, str]) -> None:
    sns, sqs, url = subscriber
    calls: list[str] = []

    def client(service: str) -> Any:
        calls.append(service)
        return sns

    events = [{"detail": {"n": n}} for n in range(SNS_BATCH + 3)]
    forward = forwarder({"Arn": TOPIC, "Id": "t", "InputPath": "$.detail"}, client)
    assert forward(records(events), None) == {"batchItemFailures": []}
    assert sorted(b["n"] for b in received(sqs, url)) == list(range(SNS_BATCH + 3))
    assert calls == ["sns", "sns"]  # two PublishBatch calls, not one Publish per event


def test_an_event_that_was_not_published_is_reported_failed(subscriber: tuple[Any, Any, str]) -> None:
    sns, sqs, url = subscriber
    forward = forwarder({"Arn": TOPIC, "Id": "t", "InputPath": "$.detail"}, lambda service: sns)
    # the second event has no detail: it cannot be delivered, the others are
    answer = forward(records([{"detail": 1}, {"other": 2}, {"detail": 3}]), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert sorted(received(sqs, url)) == [1, 3]


class PartlyPublishing:
    """An SNS client whose PublishBatch publishes only the entries with an even id, then fails."""

    def __init__(self) -> None:
        self.calls = 0

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[dict[str, str]]) -> Any:  # noqa: N803
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("throttled")
        ids = [e["Id"] for e in PublishBatchRequestEntries]
        return {"Successful": [{"Id": i, "MessageId": f"x{i}"} for i in ids if int(i) % 2 == 0], "Failed": []}


def test_entries_the_answer_does_not_list_and_failed_calls_are_retried() -> None:
    sns = PartlyPublishing()
    forward = forwarder({"Arn": TOPIC, "Id": "t"}, lambda service: sns)
    answer = forward(records([{"n": n} for n in range(SNS_BATCH + 2)]), None)
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    # the first call published m0, m2, m4, m6, m8; the second call (m10, m11) failed whole
    assert failed == ["m1", "m3", "m5", "m7", "m9", "m10", "m11"]
