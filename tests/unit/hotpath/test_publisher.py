"""Market-data publisher (batching, drop-oldest top of book, trades kept on failure) and KinesisSink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian.protocol import Fill
from meridian_hotpath.marketdata import (
    InMemorySink,
    KinesisSink,
    MarketDataPublisher,
    MarketDataRecord,
    top_of_book_record,
    trade_record,
)

STREAM = "meridian-market-data"


def fill(trade_id: int, symbol: str = "AAPL") -> Fill:
    return Fill(1, trade_id, trade_id, symbol, 19000, 5, 1, 1, 2, "a", "b", "c1", "c2", 0, 0)


def trade(trade_id: int, symbol: str = "AAPL") -> MarketDataRecord:
    return trade_record(fill(trade_id, symbol), 0)


def top(seq: int, symbol: str = "AAPL") -> MarketDataRecord:
    return top_of_book_record(symbol, seq, (19000, 5, 19010, 7), 0)


def test_records_are_public_json_with_integer_prices() -> None:
    payload = json.loads(trade(3).to_json())
    assert payload == {
        "type": "trade",
        "symbol": "AAPL",
        "seq": 3,
        "trade_id": 3,
        "price": 19000,
        "quantity": 5,
        "aggressor_side": 1,
        "timestamp_ns": 0,
    }
    book = json.loads(top(4).to_json())
    assert book["type"] == "top_of_book"
    assert (book["bid_price"], book["ask_price"], book["ask_quantity"]) == (19000, 19010, 7)


async def drain(publisher: MarketDataPublisher) -> None:
    publisher.start()
    await publisher.close(timeout=5)


def test_publisher_delivers_trades_before_top_of_book_in_batches() -> None:
    sink = InMemorySink()
    publisher = MarketDataPublisher(sink, batch_size=3)
    publisher.publish([top(1), trade(1), trade(2), top(2)])
    asyncio.run(drain(publisher))
    assert [r.payload["type"] for r in sink.records] == ["trade", "trade", "top_of_book", "top_of_book"]
    assert sink.calls == 2
    assert publisher.stats.published == 4


def test_top_of_book_drops_oldest_under_pressure_but_trades_are_kept() -> None:
    sink = InMemorySink()
    publisher = MarketDataPublisher(sink, top_of_book_limit=3)
    publisher.publish([top(seq) for seq in range(1, 11)] + [trade(n) for n in range(1, 11)])
    assert publisher.backlog == (10, 3)
    assert publisher.stats.top_of_book_dropped == 7
    asyncio.run(drain(publisher))
    assert [r.payload["seq"] for r in sink.records if not r.is_trade] == [8, 9, 10]
    assert [r.payload["trade_id"] for r in sink.records if r.is_trade] == list(range(1, 11))


def test_failed_trades_are_counted_and_retried_in_order() -> None:
    sink = InMemorySink()
    sink.fail_next = 2
    publisher = MarketDataPublisher(sink, retry_delay=0)
    publisher.publish([trade(1), trade(2), top(1)])
    asyncio.run(drain(publisher))
    assert [r.payload["trade_id"] for r in sink.records if r.is_trade] == [1, 2]
    assert publisher.stats.trade_failures == 4  # two trades, two failed attempts
    assert publisher.stats.top_of_book_dropped == 1  # a stale top of book is not worth retrying


def test_a_sink_that_raises_does_not_stop_the_publisher() -> None:
    class Flaky(InMemorySink):
        def put(self, records: Sequence[MarketDataRecord]) -> list[MarketDataRecord]:
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("sink down")
            return super().put(records)

    sink = Flaky()
    publisher = MarketDataPublisher(sink, retry_delay=0)
    publisher.publish([trade(1)])
    asyncio.run(drain(publisher))
    assert publisher.stats.sink_errors == 1
    assert [r.payload["trade_id"] for r in sink.records] == [1]


# ---- KinesisSink against moto ---------------------------------------------------------------


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


def stream_records(client: Any) -> list[dict[str, Any]]:
    found = []
    for shard in client.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        response = client.get_records(ShardIterator=iterator, Limit=10_000)
        found += [{"key": r["PartitionKey"], **json.loads(r["Data"])} for r in response["Records"]]
    return found


def test_kinesis_sink_puts_json_records_keyed_by_symbol(kinesis: Any) -> None:
    sink = KinesisSink(STREAM, client=kinesis)
    records = [trade(1, "AAPL"), trade(2, "MSFT"), top(3, "MSFT")]
    assert sink.put(records) == []
    delivered = stream_records(kinesis)
    assert sorted((r["key"], r["symbol"], r["type"]) for r in delivered) == [
        ("AAPL", "AAPL", "trade"),
        ("MSFT", "MSFT", "top_of_book"),
        ("MSFT", "MSFT", "trade"),
    ]


def test_kinesis_sink_splits_calls_at_500_records(kinesis: Any) -> None:
    calls: list[int] = []
    real = kinesis.put_records

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Records"]))
        return real(**kwargs)

    kinesis.put_records = counting
    assert KinesisSink(STREAM, client=kinesis).put([trade(n) for n in range(1, 1202)]) == []
    assert calls == [500, 500, 201]
    assert len(stream_records(kinesis)) == 1201


def test_kinesis_sink_retries_only_the_failed_records(kinesis: Any) -> None:
    real = kinesis.put_records
    sent: list[list[int]] = []

    def partially_failing(**kwargs: Any) -> Any:
        entries = kwargs["Records"]
        sent.append([json.loads(e["Data"])["trade_id"] for e in entries])
        if len(sent) > 1:
            return real(**kwargs)
        # First call: odd trade ids are throttled, even ones go through to the stream.
        passed = [e for e in entries if json.loads(e["Data"])["trade_id"] % 2 == 0]
        real(StreamName=kwargs["StreamName"], Records=passed)
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
            if json.loads(e["Data"])["trade_id"] % 2
            else {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
            for e in entries
        ]
        return {"FailedRecordCount": len(entries) - len(passed), "Records": results}

    kinesis.put_records = partially_failing
    delays: list[float] = []
    sink = KinesisSink(STREAM, client=kinesis, sleep=delays.append)
    assert sink.put([trade(n) for n in range(1, 7)]) == []
    assert sent == [[1, 2, 3, 4, 5, 6], [1, 3, 5]]
    assert len(delays) == 1
    assert sorted(r["trade_id"] for r in stream_records(kinesis)) == [1, 2, 3, 4, 5, 6]


def test_kinesis_sink_gives_back_what_still_fails_after_its_attempts(kinesis: Any) -> None:
    def failing(**kwargs: Any) -> Any:
        raise RuntimeError("endpoint unreachable")

    kinesis.put_records = failing
    delays: list[float] = []
    sink = KinesisSink(STREAM, client=kinesis, max_attempts=3, base_delay=0.1, sleep=delays.append)
    records = [trade(1), trade(2)]
    assert sink.put(records) == records
    assert delays == [0.1, 0.2]
