"""A node started with --kinesis-stream publishes trades and top of book to moto server's Kinesis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import Side
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV, kinesis_client, read_stream

pytestmark = pytest.mark.integration

STREAM = "meridian-market-data"


def test_trades_and_book_depth_land_in_kinesis(tmp_path: Path, moto_endpoint: str) -> None:
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
    # Book updates may be conflated (the journal follower publishes what changed per batch it reads),
    # but each record is the book's depth as of its seq, and the last one per symbol is the book now.
    truth: dict[int, dict[str, Any]] = {1: {"MSFT": ([], [[42_010, 5]])}, 2: {"MSFT": ([], [[42_010, 2]])},
             3: {"MSFT": ([], [[42_010, 2]]), "AAPL": ([[19_000, 1]], [])}}  # fmt: skip
    books = [r for r in records if r["type"] == "book"]
    assert books, "book depth was published"
    for book in books:
        assert book["key"] == book["symbol"]
        assert (book["bids"], book["asks"]) == truth[book["seq"]][book["symbol"]]
    last = {book["symbol"]: book for book in sorted(books, key=lambda b: b["seq"])}
    assert {symbol: book["seq"] for symbol, book in last.items()} == {"MSFT": last["MSFT"]["seq"], "AAPL": 3}
    assert last["AAPL"]["book_seq"] == 1
    assert last["MSFT"]["book_seq"] == len([b for b in books if b["symbol"] == "MSFT"])
