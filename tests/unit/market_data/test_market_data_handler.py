"""MarketDataFunction's handler on the sample events, against DynamoDB in moto (in-process)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian.consumers import PoisonMessageError
from meridian_local.lambda_events import LocalLambdaContext
from meridian_local.pollers import Handler, load_handler

REPO = Path(__file__).resolve().parents[3]
TABLE = "meridian-market-data-test"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MARKET_DATA_TABLE", TABLE)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def handler(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Handler:
    function = load_handler(REPO / "functions" / "market_data", "app.lambda_handler")
    monkeypatch.setattr(sys.modules["market_data.consumer"], "_writer", None)  # a writer on this moto
    return function


def _is_poison(record: dict[str, Any]) -> bool:
    import base64  # noqa: PLC0415

    from market_data.records import decode  # noqa: PLC0415

    try:
        decode(base64.b64decode(record["kinesis"]["data"]))
    except PoisonMessageError:
        return True
    return False


@pytest.mark.parametrize(
    "sample", sorted((REPO / "events" / "market_data").glob("*.json")), ids=lambda p: p.name
)
def test_sample_events_run_through_the_handler(handler: Handler, dynamodb: Any, sample: Path) -> None:
    event = json.loads(sample.read_text())
    response: Any = handler(event, LocalLambdaContext(function_name="market-data"))
    poison = [r["kinesis"]["sequenceNumber"] for r in event["Records"] if _is_poison(r)]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == poison
    book = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": "BOOK"}})["Item"]
    assert Decimal(book["bid_price"]["N"]) == Decimal("190.20")


def test_the_order_api_reads_what_the_handler_writes(handler: Handler, dynamodb: Any) -> None:
    event = json.loads((REPO / "events" / "market_data" / "kinesis-batch.json").read_text())
    handler(event, LocalLambdaContext())
    tape = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :trade)",
        ExpressionAttributeValues={":pk": {"S": "SYMBOL#AAPL"}, ":trade": {"S": "TRADE#"}},
        ScanIndexForward=False,
    )["Items"]
    assert [(t["price"]["N"], t["quantity"]["N"], t["execution_id"]["S"]) for t in tape] == [
        ("190.25", "100", "0-9001")
    ]
    msft = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "SYMBOL#MSFT"}, "sk": {"S": "BOOK"}})["Item"]
    assert msft["bid_price"] == {"NULL": True}
    assert msft["asks"] == {"L": [{"L": [{"N": "420.15"}, {"N": "40"}]}]}
