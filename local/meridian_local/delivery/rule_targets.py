"""Deliver EventBridge rule targets that moto cannot (Step Functions, Lambda, SNS).

The provisioner points such a target at a bridge queue; this forwards each event from that queue
to the real target with the target's own settings (Input, InputPath), reporting per-record
failures so a failed delivery is retried and never lost. An SNS target gets a batch's events in
one ``PublishBatch`` (up to 10 a call, one message each, as a ``Publish`` per event would give its
subscribers); an event the answer does not list as published is reported failed. No rule targets a
Kinesis stream: the streams carry only what the matching nodes write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Clients = Callable[[str], Any]


def json_path(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$``, ``$.detail``) in ``document``."""
    if path in ("", "$"):
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{path} not found in the event")
        value = value[part]
    return value


def _payload(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return json_path(event, target["InputPath"])
    return event


def deliver(target: dict[str, Any], event: dict[str, Any], client: Clients) -> None:
    arn = str(target["Arn"])
    service = arn.split(":")[2]
    body = json.dumps(_payload(target, event))
    if service == "states":
        client("stepfunctions").start_execution(stateMachineArn=arn, input=body)
    elif service == "lambda":
        client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=body.encode())
    elif service == "sns":
        client("sns").publish(TopicArn=arn, Message=body)
    else:
        raise ValueError(f"no local delivery for rule targets of service {service!r}")


SNS_BATCH = 10  # entries per PublishBatch


def publish_batch(target: dict[str, Any], records: list[dict[str, Any]], client: Clients) -> list[str]:
    """Publish each record's event to the SNS topic ``target`` names, ``SNS_BATCH`` to a call; the
    message ids of the records not published (the whole call's when it fails)."""
    failed: list[str] = []
    entries: dict[str, dict[str, str]] = {}  # entry id -> entry, by record message id
    for record in records:
        try:
            entries[record["messageId"]] = {
                "Message": json.dumps(_payload(target, json.loads(record["body"])))
            }
        except Exception:
            failed.append(record["messageId"])
    ids = list(entries)
    for start in range(0, len(ids), SNS_BATCH):
        chunk = ids[start : start + SNS_BATCH]
        batch = [{"Id": str(n), **entries[message_id]} for n, message_id in enumerate(chunk)]
        try:
            answer = client("sns").publish_batch(
                TopicArn=str(target["Arn"]), PublishBatchRequestEntries=batch
            )
        except Exception:
            failed += chunk
            continue
        published = {entry["Id"] for entry in answer.get("Successful", [])}
        failed += [message_id for n, message_id in enumerate(chunk) if str(n) not in published]
    return failed


def forwarder(target: dict[str, Any], client: Clients) -> Handler:
    """An SQS batch handler (partial batch responses) delivering each event to ``target``."""

    def forward(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if str(target["Arn"]).split(":")[2] == "sns":
            failed = publish_batch(target, event["Records"], client)
            return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
        failures = []
        for record in event["Records"]:
            try:
                deliver(target, json.loads(record["body"]), client)
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return forward
