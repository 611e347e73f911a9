"""The events AWS hands to a Lambda, built locally: EventBridge envelopes, SQS and Kinesis batches.

The shapes follow what EventBridge delivers to an SQS target and what Lambda event source
mappings pass to a function, so handlers run here exactly as they run in AWS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from meridian.events import EventDetail

REGION = "us-east-1"
ACCOUNT = "123456789012"


def eventbridge_event(
    detail: EventDetail,
    *,
    event_id: str | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """The envelope an EventBridge rule sends to its SQS target for ``detail``."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail.detail_type,
        "source": detail.source,
        "account": account,
        "time": detail.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": json.loads(detail.model_dump_json()),
    }


def queue_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def stream_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:kinesis:{region}:{account}:stream/{name}"


def sqs_record(message: Mapping[str, Any], source_arn: str, region: str = REGION) -> dict[str, Any]:
    """A Lambda SQS record from a ``ReceiveMessage`` message (with ``AttributeNames=["All"]``)."""
    body = str(message["Body"])
    attributes = dict(message.get("Attributes") or {})
    attributes.setdefault("ApproximateReceiveCount", "1")
    attributes.setdefault("SentTimestamp", str(int(time.time() * 1000)))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message.get("ReceiptHandle", ""),
        "body": body,
        "attributes": attributes,
        "messageAttributes": message.get("MessageAttributes") or {},
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def sqs_event(
    bodies: Iterable[str | Mapping[str, Any]], source_arn: str = queue_arn("local")
) -> dict[str, Any]:
    """A Lambda SQS event carrying ``bodies`` (mappings are JSON-encoded), with fresh message ids."""
    records = []
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        records.append(sqs_record({"MessageId": str(uuid.uuid4()), "Body": text}, source_arn))
    return {"Records": records}


def kinesis_record(
    data: bytes,
    partition_key: str,
    sequence_number: str,
    source_arn: str,
    shard_id: str = "shardId-000000000000",
    arrival: float | None = None,
    region: str = REGION,
) -> dict[str, Any]:
    """A Lambda Kinesis record: ``data`` arrives base64-encoded, as from the event source mapping."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": time.time() if arrival is None else arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/local",
        "awsRegion": region,
        "eventSourceARN": source_arn,
    }


def kinesis_event(
    payloads: Iterable[bytes | Mapping[str, Any]],
    source_arn: str = stream_arn("local"),
    first_sequence: int = 1,
) -> dict[str, Any]:
    """A Lambda Kinesis event of JSON payloads, partition key = the payload's symbol."""
    records = []
    for offset, payload in enumerate(payloads):
        data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        key = payload.get("symbol", "unknown") if isinstance(payload, Mapping) else "unknown"
        records.append(kinesis_record(data, str(key), f"{first_sequence + offset:056d}", source_arn))
    return {"Records": records}


@dataclass
class LocalLambdaContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    function_name: str = "local"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def lambda_invoker(lambda_client: Any, function_name: str) -> Callable[[dict[str, Any], Any], Any]:
    """A handler-shaped call of ``function_name`` through the Lambda endpoint, as an event source
    mapping makes it: the function's error raises."""

    def invoke(event: dict[str, Any], context: Any = None) -> Any:
        answer = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise RuntimeError(f"{function_name} failed: {payload}")
        return payload

    return invoke
