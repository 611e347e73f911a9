"""moto server's Kinesis for the node-process tests: a server on loopback and a whole-stream reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3

from meridian.kpl import user_records
from meridian_local.endpoint.moto_process import moto_process

AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def moto_server() -> Iterator[str]:
    """The local AWS endpoint, a process of its own on a free loopback port, for the duration; yields
    its URL. In this process, moto's threads would share the GIL with the test's clients, and a
    node's lease renewal waiting on them could fence a healthy primary under load."""
    with moto_process() as endpoint:
        yield endpoint


def kinesis_client(endpoint: str) -> Any:
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )  # fmt: skip


def read_stream(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in ``stream`` (aggregated ones split), shard by shard, as its JSON plus ``key``
    (the partition key of the Kinesis record that carried it)."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            if not response["Records"]:
                break
            records += [
                {"key": r["PartitionKey"], **json.loads(data)}
                for r in response["Records"]
                for data in user_records(r["Data"])
            ]
            iterator = response.get("NextShardIterator")
    return records
