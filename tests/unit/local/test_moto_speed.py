"""The local endpoint's moto speedups answer exactly as moto does: expressions parsed once per string
still get each request's own names and values, and a bad expression is refused every time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from meridian_local.endpoint import moto_speed

UPDATE = "SET #q = #q + :n, note = :note"
CONDITION = "attribute_exists(pk) AND #q < :limit"


@pytest.fixture
def table() -> Iterator[Any]:
    moto_speed.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for pk in ("a", "b"):
            client.put_item(TableName="t", Item={"pk": {"S": pk}, "qty": {"N": "0"}})
        yield client


def update(client: Any, pk: str, n: int, limit: int, note: str) -> None:
    client.update_item(
        TableName="t",
        Key={"pk": {"S": pk}},
        UpdateExpression=UPDATE,
        ConditionExpression=CONDITION,
        ExpressionAttributeNames={"#q": "qty"},
        ExpressionAttributeValues={":n": {"N": str(n)}, ":note": {"S": note}, ":limit": {"N": str(limit)}},
    )


def test_the_same_expressions_apply_each_requests_own_values(table: Any) -> None:
    for n in range(1, 6):
        update(table, "a", n, 1000, f"a{n}")
        update(table, "b", 10 * n, 1000, f"b{n}")
    a = table.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
    b = table.get_item(TableName="t", Key={"pk": {"S": "b"}})["Item"]
    assert (a["qty"], a["note"]) == ({"N": "15"}, {"S": "a5"})
    assert (b["qty"], b["note"]) == ({"N": "150"}, {"S": "b5"})
    # The cached condition still compares this request's value: qty 150 is not below 100.
    with pytest.raises(ClientError) as failed:
        update(table, "b", 1, 100, "never")
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    update(table, "b", 1, 1000, "now")  # the same strings, a higher limit: it applies
    assert table.get_item(TableName="t", Key={"pk": {"S": "b"}})["Item"]["qty"] == {"N": "151"}


def test_a_bad_expression_is_refused_every_time(table: Any) -> None:
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            table.update_item(
                TableName="t",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET qty = = :n",
                ExpressionAttributeValues={":n": {"N": "1"}},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(ValueError, match="Bad comparison"):  # moto's own answer to it
            table.update_item(
                TableName="t",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET qty = :n",
                ConditionExpression="qty <<< :n",
                ExpressionAttributeValues={":n": {"N": "1"}},
            )
