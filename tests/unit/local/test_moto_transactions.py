"""The local TransactWriteItems (moto's, with its rollback per item instead of per table) keeps
DynamoDB's all-or-nothing: a cancelled transaction leaves every item as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from meridian_local.endpoint import moto_transactions


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_transactions.install()
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="t", Item={"k": {"S": "a"}, "n": {"N": "1"}})
        client.put_item(TableName="t", Item={"k": {"S": "c"}, "n": {"N": "3"}})
        yield client


def _n(client: Any, key: str) -> str | None:
    item = client.get_item(TableName="t", Key={"k": {"S": key}}).get("Item")
    return None if item is None else str(item["n"]["N"])


def test_a_cancelled_transaction_changes_no_item(dynamodb: Any) -> None:
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}, "n": {"N": "5"}}}},
                {"Put": {"TableName": "t", "Item": {"k": {"S": "c"}, "n": {"N": "9"}},
                         "ConditionExpression": "attribute_not_exists(k)"}},
            ]
        )  # fmt: skip
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "None", "ConditionalCheckFailed"]
    # The update and the put made before the refused item are rolled back.
    assert (_n(dynamodb, "a"), _n(dynamodb, "b"), _n(dynamodb, "c")) == ("1", None, "3")


def test_a_refused_condition_returns_the_stored_item_when_asked(dynamodb: Any) -> None:
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"k": {"S": "a"}, "n": {"N": "2"}},
                         "ConditionExpression": "attribute_not_exists(k)",
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            ]
        )  # fmt: skip
    assert cancelled.value.response["CancellationReasons"][0]["Item"] == {"k": {"S": "a"}, "n": {"N": "1"}}


def test_a_transaction_writes_every_item(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}, "n": {"N": "5"}}}},
        ]
    )  # fmt: skip
    assert (_n(dynamodb, "a"), _n(dynamodb, "b")) == ("2", "5")


def test_each_condition_is_evaluated_once_and_still_decides(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser  # noqa: PLC0415

    parsed: list[str] = []
    parse = ConditionExpressionParser.parse

    def counting(self: Any) -> Any:
        parsed.append(self.condition_expression)
        return parse(self)

    monkeypatch.setattr(ConditionExpressionParser, "parse", counting)
    dynamodb.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                        "ConditionExpression": "n < :two",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}, "n": {"N": "5"}},
                     "ConditionExpression": "attribute_not_exists(k)"}},
            {"Delete": {"TableName": "t", "Key": {"k": {"S": "c"}}, "ConditionExpression": "n = :three",
                        "ExpressionAttributeValues": {":three": {"N": "3"}}}},
        ]
    )  # fmt: skip
    conditions = ["n < :two", "attribute_not_exists(k)", "n = :three"]
    # moto's request validation parses each once, then the transaction evaluates each once (moto's
    # own wrote each item with its condition, which parsed and evaluated it a second time)
    assert [c for c in parsed if c] == conditions + conditions
    assert (_n(dynamodb, "a"), _n(dynamodb, "b"), _n(dynamodb, "c")) == ("2", "5", None)
    # the same update again: n is 2 now, not below 2, so the transaction is cancelled
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"k": {"S": "d"}, "n": {"N": "4"}}}},
                {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                            "ConditionExpression": "n < :two",
                            "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}}},
            ]
        )  # fmt: skip
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert (_n(dynamodb, "a"), _n(dynamodb, "d")) == ("2", None)
