"""Redrive ExecutionsDeadLetterQueue: publish the trades of the drop-copy batches the mapping gave up on.

The mapping's on-failure destination receives a description of each batch it discarded (stream,
shard, first and last sequence number), not the records. While the stream still holds them (7 days),
this reads each described range and runs it through the function's own :func:`consume`, so the
trades reach the bus exactly as they would have (the ledger ignores any it already has). A message
is deleted only when its whole range was published; a range that still fails (an unreadable record:
its reason is printed) keeps its message for a person to look at. Run it with the operator's
credentials (reading the stream needs the trading key through Kinesis)::

    python -m executions.redrive --queue-url <ExecutionsDeadLetterQueue URL> --bus <TradingEventBusName>
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from executions.consumer import UnreadableRecordAtHeadError, consume


@dataclass(frozen=True, slots=True)
class Redriven:
    message_id: str
    records: int
    published: int
    problem: str = ""  # empty when the whole range was published


def batch_records(kinesis: Any, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The described range as Lambda's Kinesis records (first to last sequence number, inclusive)."""
    stream_arn = str(batch["streamArn"])
    last = int(batch["endSequenceNumber"])
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_arn.rsplit("/", 1)[-1],
        ShardId=batch["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=batch["startSequenceNumber"],
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in answer["Records"]:
            if int(record["SequenceNumber"]) > last:
                return records
            records.append(_lambda_record(record, stream_arn, batch["shardId"]))
        if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
            break  # caught up with the shard without reaching the range's end
        iterator = answer.get("NextShardIterator")
    return records


def _lambda_record(record: dict[str, Any], stream_arn: str, shard_id: str) -> dict[str, Any]:
    sequence_number = str(record["SequenceNumber"])
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "awsRegion": stream_arn.split(":")[3],
        "eventSourceARN": stream_arn,
    }


def redrive(sqs: Any, kinesis: Any, events: Any, queue_url: str, bus_name: str) -> list[Redriven]:
    """Redrive every message visible on ``queue_url``; each result says what became of one."""
    results: list[Redriven] = []
    seen: set[str] = set()
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break  # only the ones that failed again, visible once more
        for message in fresh:
            seen.add(message["MessageId"])
            result = _redrive_one(kinesis, events, bus_name, message)
            results.append(result)
            if not result.problem:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return results


def _redrive_one(kinesis: Any, events: Any, bus_name: str, message: dict[str, Any]) -> Redriven:
    message_id = str(message["MessageId"])
    try:
        batch = json.loads(message["Body"])["KinesisBatchInfo"]
    except (ValueError, KeyError, TypeError):
        return Redriven(message_id, 0, 0, "not a Kinesis batch description")
    records = batch_records(kinesis, batch)
    if not records:
        return Redriven(message_id, 0, 0, "the range is no longer in the stream")
    try:
        outcome = consume({"Records": records}, None, events, bus_name)
    except UnreadableRecordAtHeadError as exc:
        return Redriven(message_id, len(records), 0, str(exc))
    failed = outcome.response["batchItemFailures"]
    problem = f"failed from record {failed[0]['itemIdentifier']}" if failed else ""
    return Redriven(message_id, len(records), outcome.published, problem)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executions.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--queue-url", required=True, help="ExecutionsDeadLetterQueue's URL")
    parser.add_argument("--bus", required=True, help="the trading event bus (TradingEventBusName)")
    args = parser.parse_args(argv)
    from meridian.aws_clients import client as make  # noqa: PLC0415 - an operator tool: boto3 only when run

    results = redrive(make("sqs"), make("kinesis"), make("events"), args.queue_url, args.bus)
    for result in results:
        state = f"kept: {result.problem}" if result.problem else "redriven, deleted"
        print(f"{result.message_id}: {result.records} records, {result.published} published; {state}")
    return 1 if any(result.problem for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
