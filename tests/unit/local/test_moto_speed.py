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


def test_a_table_query_reads_its_partition_alone_and_answers_as_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    moto_speed.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="md",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "kind", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "kinds",
                    "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for symbol in ("AAPL", "MSFT"):
            for n in (3, 1, 2):
                item = {"pk": {"S": f"SYMBOL#{symbol}"}, "sk": {"S": f"TRADE#{n}"}, "kind": {"S": "trade"}}
                client.put_item(TableName="md", Item=item)
            client.put_item(TableName="md", Item={"pk": {"S": f"SYMBOL#{symbol}"}, "sk": {"S": "BOOK"}})
        listed: list[int] = []
        listing = Table.all_items

        def counting(self: Any) -> list[Any]:
            items = listing(self)
            listed.append(len(items))
            return items

        monkeypatch.setattr(Table, "all_items", counting)
        newest = client.query(
            TableName="md",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": "SYMBOL#AAPL"}, ":t": {"S": "TRADE#"}},
            ScanIndexForward=False,
            Limit=2,
        )["Items"]
        assert [item["sk"]["S"] for item in newest] == ["TRADE#3", "TRADE#2"]
        assert listed == [4]  # AAPL's four items, not the table's eight
        none = client.query(
            TableName="md",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "SYMBOL#TSLA"}},
        )
        assert none["Items"] == []
        trades = client.query(
            TableName="md",
            IndexName="kinds",
            KeyConditionExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "trade"}},
        )["Items"]
        assert len(trades) == 6  # an index query still reads every item of the table
        assert listed[-1] == 8


EXPRESSIONS = (
    UPDATE,
    "SET #s = :status, reviewer = :reviewer, #c = :comment, decided_at = :at",
    "SET a.b[2].c = if_not_exists(a.b[2].c, :zero) + :n, l = list_append(l, :more) REMOVE x[1], y",
    "ADD counter :one, tags :set DELETE old :gone",
)


def tree(node: Any, seen: dict[int, int] | None = None) -> Any:
    """A node's shape: its class, type name, children and the position of its parent in the walk."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]  # noqa: PLC0415

    seen = {} if seen is None else seen
    if not isinstance(node, Node):
        return node
    seen[id(node)] = len(seen)
    parent = None if node.parent is None else seen.get(id(node.parent), "outside")
    return (type(node), node.type, parent, [tree(c, seen) for c in node.children or ()])


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_an_expression_tree_is_copied_as_deepcopy_copies_it(expression: str) -> None:
    import copy  # noqa: PLC0415

    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]  # noqa: PLC0415
        UpdateExpressionParser,
    )

    parsed = UpdateExpressionParser.make(expression)
    with pytest.MonkeyPatch.context() as patch:  # the parser's trees never fall back to deepcopy
        patch.setattr(copy, "deepcopy", lambda value: pytest.fail(f"deep-copied {value!r}"))
        copied = moto_speed.copy_expression(parsed)
    assert tree(copied) == tree(copy.deepcopy(parsed)) == tree(parsed)
    originals = {id(n) for n in _nodes(parsed)}
    assert not originals & {id(n) for n in _nodes(copied)}  # nothing shared with the cached tree
    assert moto_speed.copy_expression({"S": "x"}) == {"S": "x"}  # other values: copy.deepcopy


def _nodes(node: Any) -> list[Any]:
    children = [c for c in getattr(node, "children", None) or () if hasattr(c, "children")]
    return [node, *(n for c in children for n in _nodes(c))]


def test_a_shard_is_read_by_sequence_number_as_moto_reads_it() -> None:
    from moto.kinesis.models import Shard  # noqa: PLC0415

    moto_speed.install()
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=1)
        for n in range(30):
            kinesis.put_record(StreamName="s", Data=f"r{n}".encode(), PartitionKey="k")
        shard_id = kinesis.describe_stream(StreamName="s")["StreamDescription"]["Shards"][0]["ShardId"]

        def read_all(limit: int) -> list[bytes]:
            iterator = kinesis.get_shard_iterator(
                StreamName="s", ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            seen: list[bytes] = []
            while True:
                answer = kinesis.get_records(ShardIterator=iterator, Limit=limit)
                seen += [r["Data"] for r in answer["Records"]]
                iterator = answer["NextShardIterator"]
                if not answer["Records"]:
                    return seen

        assert read_all(7) == [f"r{n}".encode() for n in range(30)]
        latest = kinesis.get_shard_iterator(StreamName="s", ShardId=shard_id, ShardIteratorType="LATEST")
        assert kinesis.get_records(ShardIterator=latest["ShardIterator"])["Records"] == []
        shard = next(iter(next(iter(_streams(kinesis).values())).shards.values()))
        assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (1, 30)
        # a number missing (records expired, say): moto's own walk answers
        del shard.records[11]
        found, last, _ = shard.get_records("10", 3)
        walked, walked_last, _ = Shard.get_records.__wrapped__(shard, "10", 3)  # type: ignore[attr-defined]
        assert [r.sequence_number for r in found] == [r.sequence_number for r in walked] == [12, 13, 14]
        assert last == walked_last == 14


def _streams(kinesis: Any) -> dict[str, Any]:
    from moto.kinesis.models import kinesis_backends  # noqa: PLC0415

    return kinesis_backends["123456789012"]["us-east-1"].streams
