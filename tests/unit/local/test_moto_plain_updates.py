"""Plain update expressions (SET/REMOVE/ADD of top-level attributes) applied without moto's
validator and executor answer exactly as moto's own path: the same items, the same errors, the
same partial writes, for every request below, made once through each path."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb import models as dynamodb_models

from meridian_local.endpoint import moto_speed

models: Any = dynamodb_models  # the module whose validator and executor moto_speed replaces
BIG = "x" * 203_000  # two of these pass the item size limit (405,000 bytes)

# (UpdateExpression, ExpressionAttributeNames, ExpressionAttributeValues), applied in order to the
# item "a" (and to "new", which does not exist yet), whatever the previous ones did.
REQUESTS: list[tuple[str, dict[str, str] | None, dict[str, Any] | None]] = [
    ("SET #s = :s, note = :n", {"#s": "status"}, {":s": {"S": "NEW"}, ":n": {"S": "first"}}),
    ("SET qty = :q ADD #f :one", {"#f": "filled"}, {":q": {"N": "10"}, ":one": {"N": "1"}}),
    ("ADD #f :half, tags :tags", {"#f": "filled"}, {":half": {"N": "0.5"}, ":tags": {"SS": ["b", "a"]}}),
    ("ADD tags :more", None, {":more": {"SS": ["a", "c"]}}),
    (
        "SET #u0 = :u0, #u1 = :u1 REMOVE #r0, note",
        {"#u0": "price", "#u1": "m", "#r0": "qty"},
        {":u0": {"N": "190.25"}, ":u1": {"M": {"k": {"L": [{"S": "v"}, {"NULL": True}]}}}},
    ),
    ("REMOVE #a, #b, zz", {"#a": "absent", "#b": "m"}, None),
    ("SET a1 = :v, a2 = :v", None, {":v": {"BOOL": True}}),
    # Refused, one way or another: each by moto's own words.
    ("SET #missing = :s", {"#other": "x"}, {":s": {"S": "x"}}),
    ("SET note = :nope", None, {":s": {"S": "x"}}),
    ("SET note = :s", None, None),
    ("SET #n = :s", None, {":s": {"S": "x"}}),
    ("SET #s = :s, #t = :s", {"#s": "status", "#t": "status"}, {":s": {"S": "x"}}),
    ("SET #s = :s REMOVE status", {"#s": "status"}, {":s": {"S": "x"}}),
    ("SET #k = :s", {"#k": "pk"}, {":s": {"S": "x"}}),
    ("SET pk = :s", None, {":s": {"S": "x"}}),
    ("SET gsi_key = :e", None, {":e": {"S": ""}}),
    ("SET gsi_key = :n", None, {":n": {"N": "1"}}),
    ("SET #g = :e", {"#g": "gsi_key"}, {":e": {"S": ""}}),
    ("SET #name = :s", {"#name": "name"}, {":s": {"S": "x"}}),
    ("SET name = :s", None, {":s": {"S": "x"}}),
    ("ADD #s :one", {"#s": "status"}, {":one": {"N": "1"}}),
    ("ADD tags :one", None, {":one": {"N": "1"}}),
    ("ADD tags :ns", None, {":ns": {"NS": ["1"]}}),
    ("ADD tags :empty", None, {":empty": {"SS": []}}),
    ("ADD note2 :s", None, {":s": {"S": "x"}}),
    ("ADD #f :bad", {"#f": "filled"}, {":bad": {"N": "abc"}}),
    ("SET x1 = :one ADD #s :one", {"#s": "status"}, {":one": {"N": "1"}}),
    ("SET big1 = :big, big2 = :big, after = :one", None, {":big": {"S": BIG}, ":one": {"N": "1"}}),
    ("REMOVE big1, big2", None, None),
    ("SET big1 = :big", None, {":big": {"S": BIG}}),
    ("REMOVE big1 SET big3 = :big", None, {":big": {"S": BIG}}),  # the size freed counts at once
    ("ADD tags :many SET big4 = :big", None, {":many": {"SS": ["y" * 5000]}, ":big": {"S": BIG}}),
    ("SET big4 = :big", None, {":big": {"S": "y" * 190_000}}),
    ("SET big3 = :big", None, {":big": {"S": BIG}}),  # the old value counts beside the new
    ("SET big3 = :small, big5 = :big", None, {":small": {"S": "s"}, ":big": {"S": BIG}}),
    ("REMOVE big3, big4, big5", None, None),
    ("SET a = :one SET b = :one", None, {":one": {"N": "1"}}),
    ("ADD c :one, d :one DELETE tags :ss", None, {":one": {"N": "1"}, ":ss": {"SS": ["a"]}}),
    ("SET a = :one, b = a", None, {":one": {"N": "1"}}),
    ("SET a = :one + :one", None, {":one": {"N": "1"}}),
    ("SET a.b = :one", None, {":one": {"N": "1"}}),
    ("SET lst[0] = :one", None, {":one": {"N": "1"}}),
    ("SET a = if_not_exists(a, :one)", None, {":one": {"N": "1"}}),
    ("REMOVE #m.k", {"#m": "m"}, None),
    ("SET #s = :s", {"#s": "status", "#unused": "x"}, {":s": {"S": "DONE"}}),
]


def _outcomes(client: Any, transact: bool) -> list[Any]:
    outcomes: list[Any] = []
    for expression, names, values in REQUESTS:
        for pk in ("a", "new"):
            update: dict[str, Any] = {
                "TableName": "t",
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": expression,
            }
            if names is not None:
                update["ExpressionAttributeNames"] = names
            if values is not None:
                update["ExpressionAttributeValues"] = values
            try:
                if transact:
                    client.transact_write_items(TransactItems=[{"Update": update}])
                    outcome: Any = "ok"
                else:
                    outcome = client.update_item(**update, ReturnValues="ALL_NEW").get("Attributes")
            except ClientError as refused:
                error = refused.response["Error"]
                outcome = (error["Code"], error["Message"], refused.response.get("CancellationReasons"))
            except Exception as failed:  # moto's own failures (500s) are compared too
                outcome = (type(failed).__name__, str(failed))
            items = client.scan(TableName="t", ConsistentRead=True)["Items"]
            outcomes.append((expression, pk, outcome, sorted(items, key=lambda item: item["pk"]["S"])))
    stream = client.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    shard = streams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    outcomes.append(
        [(r["eventName"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage")) for r in records]
    )
    return outcomes


def _run(transact: bool) -> list[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "gsi_key", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_gsi",
                    "KeySchema": [{"AttributeName": "gsi_key", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "filled": {"N": "0"}})
        return _outcomes(client, transact)


@pytest.mark.parametrize("transact", [False, True], ids=["UpdateItem", "TransactWriteItems"])
def test_plain_updates_answer_and_write_as_moto_does(monkeypatch: pytest.MonkeyPatch, transact: bool) -> None:
    moto_speed.install()
    direct = _run(transact)
    refused = [o for o in direct[:-1] if isinstance(o[2], tuple)]
    assert len(refused) >= 40  # every kind of refusal is among them
    assert len(direct) - 1 - len(refused) >= 14  # and updates applied
    # The same requests through moto's validator and executor.
    from moto.dynamodb.parsing.executors import UpdateExpressionExecutor  # noqa: PLC0415

    monkeypatch.setattr(models, "UpdateExpressionValidator", models.UpdateExpressionValidator.__wrapped__)
    monkeypatch.setattr(models, "UpdateExpressionExecutor", UpdateExpressionExecutor)
    assert _run(transact) == direct


def test_a_plain_update_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    moto_speed.install()
    kept = models.UpdateExpressionValidator
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        calls: list[Any] = []

        def validator(*args: Any, **kwargs: Any) -> Any:
            calls.append(kept(*args, **kwargs))
            return calls[-1]

        monkeypatch.setattr(models, "UpdateExpressionValidator", validator)
        client.update_item(
            TableName="t",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET #s = :s ADD n :one REMOVE gone",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "NEW"}, ":one": {"N": "1"}},
        )
        assert calls
        assert all(isinstance(call, moto_speed._PlainUpdate) for call in calls)  # moto's validator: not used
        item = client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
        assert item == {"pk": {"S": "a"}, "status": {"S": "NEW"}, "n": {"N": "1"}}
