"""SQS set-up and inspection for the fault-injection tests."""

from __future__ import annotations

from typing import Any


def queue_with_dlq(sqs: Any, name: str, max_receives: int) -> tuple[str, str]:
    """A queue redriving to its DLQ after ``max_receives``; returns (queue URL, DLQ URL)."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    dlq_arn = attributes["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "{max_receives}"}}',
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive and delete everything visible on ``url``."""
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    ):
        messages += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages
