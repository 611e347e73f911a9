"""A node started with --kinesis-stream publishes trades and top of book to moto server's Kinesis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import Side
from meridian_hotpath.process import NodeProcess

pytestmark = pytest.mark.integration

STREAM = "meridian-market-data"
AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def read_stream(kinesis: Any) -> list[dict[str, Any]]:
    records = []
    for shard in kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        records += [{"key": r["PartitionKey"], **json.loads(r["Data"])} for r in response["Records"]]
    return records


def test_trades_and_top_of_book_land_in_kinesis(tmp_path: Path, moto_endpoint: str) -> None:
    kinesis = boto3.client(
        "kinesis", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )  # fmt: skip
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}
    with NodeProcess.start(tmp_path / "node", "--kinesis-stream", STREAM, env=env) as node:
        client = HotpathClient(node.host, node.port)
        client.submit("k1", "maker", "MSFT", Side.SELL, 5, 42_010)
        client.submit("k2", "taker", "MSFT", Side.BUY, 3, 42_010)
        client.submit("k3", "maker", "AAPL", Side.BUY, 1, 19_000)
        assert node.terminate() == 0  # shutdown delivers whatever is still queued
    close_pooled_connections()
    records = read_stream(kinesis)
    trades = [r for r in records if r["type"] == "trade"]
    assert [(t["key"], t["symbol"], t["price"], t["quantity"]) for t in trades] == [
        ("MSFT", "MSFT", 42_010, 3)
    ]
    tops = sorted(
        (r["seq"], r["key"], r["bid_price"], r["ask_price"], r["ask_quantity"])
        for r in records
        if r["type"] == "top_of_book"
    )
    assert tops == [(1, "MSFT", 0, 42_010, 5), (2, "MSFT", 0, 42_010, 2), (3, "AAPL", 19_000, 0, 0)]
