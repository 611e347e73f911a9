"""A node started with --kinesis-stream publishes trades and top of book to moto server's Kinesis."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import Side
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV, kinesis_client, read_stream

pytestmark = pytest.mark.integration

STREAM = "meridian-market-data"


def test_trades_and_top_of_book_land_in_kinesis(tmp_path: Path, moto_endpoint: str) -> None:
    kinesis = kinesis_client(moto_endpoint)
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}
    with NodeProcess.start(tmp_path / "node", "--kinesis-stream", STREAM, env=env) as node:
        client = HotpathClient(node.host, node.port)
        client.submit("k1", "maker", "MSFT", Side.SELL, 5, 42_010)
        client.submit("k2", "taker", "MSFT", Side.BUY, 3, 42_010)
        client.submit("k3", "maker", "AAPL", Side.BUY, 1, 19_000)
        assert node.terminate() == 0  # shutdown delivers whatever is still queued
    close_pooled_connections()
    records = read_stream(kinesis, STREAM)
    trades = [r for r in records if r["type"] == "trade"]
    assert [(t["key"], t["symbol"], t["price"], t["quantity"]) for t in trades] == [
        ("MSFT", "MSFT", 42_010, 3)
    ]
    # Top of book may be conflated (the journal follower publishes what changed per batch it reads),
    # but each record is the book as of its seq, and the last one per symbol is the book now.
    truth = {1: {"MSFT": (0, 0, 42_010, 5)}, 2: {"MSFT": (0, 0, 42_010, 2)}, 3: {"MSFT": (0, 0, 42_010, 2),
             "AAPL": (19_000, 1, 0, 0)}}  # fmt: skip
    tops = [r for r in records if r["type"] == "top_of_book"]
    assert tops, "top of book was published"
    for top in tops:
        assert top["key"] == top["symbol"]
        book = (top["bid_price"], top["bid_quantity"], top["ask_price"], top["ask_quantity"])
        assert book == truth[top["seq"]][top["symbol"]]
    last = {top["symbol"]: top for top in sorted(tops, key=lambda t: t["seq"])}
    assert {symbol: top["seq"] for symbol, top in last.items()} == {"MSFT": last["MSFT"]["seq"], "AAPL": 3}
    assert (last["MSFT"]["ask_price"], last["MSFT"]["ask_quantity"]) == (42_010, 2)
