"""The market-data function fed by a real Kinesis stream (moto server) through the local poller.

A poison record makes the poller retry from it, then hand the batch to the on-failure queue, as
the Lambda event source mapping does; every good record still reaches DynamoDB exactly once.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meridian_local.delivery.pollers import KinesisPoller, drain, load_handler, sqs_destination
from tests.integration.pipeline.sqs_harness import drain_queue

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TABLE, STREAM = "market-data-it", "market-data-it"
T0 = 1_772_461_800_000_000_000


def _create_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_stream_to_table_with_a_poison_record(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kinesis, dynamodb, sqs = aws("kinesis"), aws("dynamodb"), aws("sqs")
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    _create_table(dynamodb)
    dlq = sqs.create_queue(QueueName="market-data-on-failure")["QueueUrl"]
    monkeypatch.setenv("MARKET_DATA_TABLE", TABLE)
    handler = load_handler(REPO / "functions" / "market_data", "app.lambda_handler")
    monkeypatch.setattr(sys.modules["market_data.consumer"], "_writer", None)

    rng = random.Random(7)
    symbols = ["AAPL", "MSFT", "ESZ6", "BTCUSD"]
    newest: dict[str, int] = {}
    trades = 0
    entries: list[dict[str, Any]] = []
    for seq in range(1, 601):
        symbol = rng.choice(symbols)
        if seq % 3 == 0:
            trades += 1
            record = {
                "type": "trade",
                "symbol": symbol,
                "seq": seq,
                "trade_id": seq,
                "price": 19000 + seq,
                "quantity": 1,
                "aggressor_side": 1,
                "timestamp_ns": T0 + seq,
            }
        else:
            newest[symbol] = seq
            record = {
                "type": "top_of_book",
                "symbol": symbol,
                "seq": seq,
                "bid_price": 18000 + seq,
                "bid_quantity": 5,
                "ask_price": 18001 + seq,
                "ask_quantity": 7,
                "timestamp_ns": T0 + seq,
            }
        entries.append({"Data": json.dumps(record).encode(), "PartitionKey": symbol})
        if seq == 300:
            entries.append({"Data": b"{poison", "PartitionKey": "AAPL"})
    for start in range(0, len(entries), 500):
        kinesis.put_records(StreamName=STREAM, Records=entries[start : start + 500])

    poller = KinesisPoller(
        kinesis,
        STREAM,
        handler,
        batch_size=100,
        max_retries=2,
        on_failure=sqs_destination(sqs, dlq),
        function_name="market-data",
    )
    drain([poller], max_rounds=200, idle_rounds=2)

    items = dynamodb.scan(TableName=TABLE)["Items"]  # a few hundred small items: one page
    tape = [i for i in items if i["sk"]["S"].startswith("TRADE#")]
    books = {
        i["pk"]["S"].removeprefix("SYMBOL#"): int(i["node_seq"]["N"]) for i in items if i["sk"]["S"] == "BOOK"
    }
    assert len(tape) == trades
    assert books == newest
    [failure] = [json.loads(m["Body"]) for m in drain_queue(sqs, dlq)]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert poller.stats.sent_to_on_failure == 1
