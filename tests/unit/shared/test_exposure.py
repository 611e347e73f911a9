"""meridian.exposure: what an order contributes, what a fill or a cancel changes, and the conditional
update that reserves against the limits (checked against DynamoDB's rules in moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from meridian import exposure
from meridian.exposure import Exposure, Limits

P = Decimal("190.00")


def test_an_order_contributes_its_fills_as_position_and_its_open_quantity_at_its_price() -> None:
    buy = exposure.of_order("BUY", "AAPL", open_quantity=6, filled=4, is_open=True, price=P)
    assert buy == Exposure(1, Decimal("1140.00"), {"AAPL": 10}, {"AAPL": -4})
    sell = exposure.of_order("SELL", "AAPL", open_quantity=6, filled=4, is_open=True, price=P)
    assert sell == Exposure(1, Decimal("1140.00"), {"AAPL": -4}, {"AAPL": 10})
    closed = exposure.of_order("BUY", "AAPL", open_quantity=6, filled=4, is_open=False, price=P)
    assert closed == Exposure(0, Decimal("0.00"), {"AAPL": 4}, {"AAPL": -4})


def test_a_fill_moves_quantity_from_open_to_position_and_a_cancel_gives_it_back() -> None:
    # A resting buy of 10: a fill of 4 leaves its worst long as it was, and lowers its worst short.
    assert exposure.of_fill("BUY", "AAPL", 4, 6, P) == Exposure(0, Decimal("-760.00"), {}, {"AAPL": -4})
    assert exposure.of_fill("SELL", "AAPL", 4, 0, P) == Exposure(-1, Decimal("-760.00"), {"AAPL": -4}, {})
    assert exposure.of_cancel("BUY", "AAPL", 6, P) == Exposure(-1, Decimal("-1140.00"), {"AAPL": -6}, {})
    held = exposure.of_order("BUY", "AAPL", open_quantity=10, filled=0, is_open=True, price=P)
    after = held + exposure.of_fill("BUY", "AAPL", 4, 6, P) + exposure.of_cancel("BUY", "AAPL", 6, P)
    assert after == exposure.of_order("BUY", "AAPL", open_quantity=0, filled=4, is_open=False, price=P)


def test_only_what_grows_is_reserved_ahead() -> None:
    change = Exposure(0, Decimal(5), {"AAPL": 3, "MSFT": -2}, {"AAPL": -1})
    assert change.increases() == Exposure(0, Decimal(5), {"AAPL": 3}, {})
    assert (Exposure(1) - Exposure(1)).is_zero


def test_the_reservation_names_each_limit_it_grows_towards_and_only_those() -> None:
    delta = exposure.of_order("BUY", "AAPL", open_quantity=10, filled=0, is_open=True, price=P)
    positions = {"AAPL": 100, "MSFT": 5}
    limits = Limits(max_open_orders=3, max_open_notional=Decimal(5000), position_limits=positions)
    body = exposure.update("exposure", "ACC-A", delta, limits)
    condition = body["ConditionExpression"]
    names = body["ExpressionAttributeNames"]
    assert condition.startswith("attribute_exists(")  # the account's positions were seeded
    assert {names[a] for a in names} >= {"open_orders", "open_notional", "long:AAPL", "seeded_at"}
    assert "short:AAPL" not in names.values()
    assert "long:MSFT" not in names.values()
    assert body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    release = exposure.update("exposure", "ACC-A", -delta)
    assert "ConditionExpression" not in release  # giving back is never refused


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="exposure",
            KeySchema=[{"AttributeName": "account", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "account", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _reserve(client: Any, delta: Exposure, limits: Limits) -> str | None:
    try:
        client.update_item(**exposure.update("exposure", "ACC-A", delta, limits))
    except ClientError:
        found = client.get_item(TableName="exposure", Key={"account": {"S": "ACC-A"}}).get("Item")
        return (exposure.breach(found, delta, limits) or ("?", ""))[0]
    return None


def test_reservations_stop_at_each_limit_in_dynamodb(table: Any) -> None:
    limits = Limits(max_open_orders=5, position_limits={"AAPL": 25})
    buy = exposure.of_order("BUY", "AAPL", open_quantity=10, filled=0, is_open=True, price=P)
    assert _reserve(table, buy, limits) == "NOT_SEEDED"
    table.update_item(**exposure.seed("exposure", "ACC-A", {"AAPL": -20}, datetime.now(UTC)))
    # Short 20 already: long starts at -20, so 4 buys of 10 fit (20 long if all fill), the 5th does not.
    assert [_reserve(table, buy, limits) for _ in range(5)] == [None, None, None, None, "POSITION_LIMIT"]
    small = exposure.of_order("BUY", "MSFT", open_quantity=1, filled=0, is_open=True, price=P)
    assert _reserve(table, small, limits) is None
    assert _reserve(table, small, limits) == "MAX_OPEN_ORDERS"
    item = table.get_item(TableName="exposure", Key={"account": {"S": "ACC-A"}})["Item"]
    assert exposure.current(item)["long:AAPL"] == 20
    assert exposure.current(item)["open_orders"] == 5


def test_an_order_larger_than_the_room_is_refused_even_with_nothing_stored(table: Any) -> None:
    table.update_item(**exposure.seed("exposure", "ACC-A", {}, datetime.now(UTC)))
    big = exposure.of_order("SELL", "AAPL", open_quantity=30, filled=0, is_open=True, price=P)
    assert _reserve(table, big, Limits(position_limits={"AAPL": 25})) == "POSITION_LIMIT"


def test_seeding_happens_once(table: Any) -> None:
    table.update_item(**exposure.seed("exposure", "ACC-A", {"AAPL": 7}, datetime.now(UTC)))
    with pytest.raises(ClientError):
        table.update_item(**exposure.seed("exposure", "ACC-A", {"AAPL": 7}, datetime.now(UTC)))
    item = table.get_item(TableName="exposure", Key={"account": {"S": "ACC-A"}})["Item"]
    assert (exposure.current(item)["long:AAPL"], exposure.current(item)["short:AAPL"]) == (
        Decimal(7),
        Decimal(-7),
    )
