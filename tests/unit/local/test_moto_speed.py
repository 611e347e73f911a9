"""The local endpoint's moto speedups answer exactly as moto does: expressions parsed once per string
still get each request's own names and values, and a bad expression is refused every time."""

from __future__ import annotations

import logging
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


def _create_market_data_table(client: Any, kinds_index: bool = False) -> None:
    """Table ``md`` keyed by ``pk`` and ``sk`` (strings), with a ``kinds`` index on ``kind`` if asked."""
    attributes = [{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")]
    indexes: dict[str, Any] = {}
    if kinds_index:
        attributes.append({"AttributeName": "kind", "AttributeType": "S"})
        indexes["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "kinds",
                "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    client.create_table(
        TableName="md",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **indexes,
    )


def test_a_table_query_reads_its_partition_alone_and_answers_as_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    moto_speed.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_market_data_table(client, kinds_index=True)
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
        assert listed == [3]  # of AAPL's four items, those moto's walk reaches; not the table's eight
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


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)", "ScanIndexForward": False, "Limit": 1},
    {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)", "ScanIndexForward": False, "Limit": 5},
    {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)", "Limit": 3},
    {"KeyConditionExpression": "pk = :pk AND sk > :t", "ScanIndexForward": False, "Limit": 4},
    {"KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b", "Limit": 2},
    {"KeyConditionExpression": "pk = :pk", "ScanIndexForward": False, "Limit": 2},
    {"KeyConditionExpression": "pk = :pk", "Limit": 39},
    {"KeyConditionExpression": "pk = :pk", "Limit": 40},
    {"KeyConditionExpression": "pk = :pk", "Limit": 500},
    {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :none)", "Limit": 2},
    {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)",
        "FilterExpression": "qty > :q",
        "ScanIndexForward": False,
        "Limit": 3,
    },
    {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)", "Limit": 3, "Select": "COUNT"},
]


def _query_all(client: Any) -> list[Any]:
    answers = []
    values = {
        ":pk": {"S": "SYMBOL#AAPL"},
        ":t": {"S": "TRADE#"},
        ":a": {"S": "TRADE#010"},
        ":b": {"S": "TRADE#020"},
        ":none": {"S": "ZZZ"},
        ":q": {"N": "15"},
    }
    for query in QUERIES:
        used = {k: v for k, v in values.items() if k in str(query)}
        request = {"TableName": "md", "ExpressionAttributeValues": used, **query}
        pages = []
        while True:  # every page: the next one starts after the last key, by moto's own walk
            answer = client.query(**request)
            pages.append(
                (answer.get("Items"), answer["Count"], answer["ScannedCount"], answer.get("LastEvaluatedKey"))
            )
            if "LastEvaluatedKey" not in answer or len(pages) > 50:
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        answers.append(pages)
    return answers


def test_a_limited_query_walks_the_items_moto_would_and_answers_as_moto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    moto_speed.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_market_data_table(client)
        for n in (*range(30, 0, -2), *range(1, 30, 2)):  # out of order
            item = {"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": f"TRADE#{n:03d}"}, "qty": {"N": str(n)}}
            client.put_item(TableName="md", Item=item)
        for sk in ("BOOK", "A", "ZZ#1", "ZZ#2", "TRADF", "TRADE", "TRADE$", "TRADE#", "zz", "0"):
            client.put_item(TableName="md", Item={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": sk}})
        client.put_item(TableName="md", Item={"pk": {"S": "SYMBOL#MSFT"}, "sk": {"S": "TRADE#001"}})
        walked: list[int] = []
        listing = Table.all_items

        def counting(self: Any) -> list[Any]:
            items = listing(self)
            walked.append(len(items))
            return items

        monkeypatch.setattr(Table, "all_items", counting)
        quick = _query_all(client)
        assert walked[0] == 7  # five other keys sort after the newest trade; it, and the item after it
        assert [item["sk"]["S"] for item in quick[0][0][0]] == ["TRADE#030"]
        before = len(walked)
        monkeypatch.setattr(Table, "query", Table.query.__wrapped__)  # type: ignore[attr-defined]
        assert _query_all(client) == quick
        assert set(walked[before:]) == {41}  # moto's own: every item of the table, every time


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


# (update expression, names, values): each applied twice, in this order, to item "a" (qty 0)
UPDATES: tuple[tuple[str, dict[str, str] | None, dict[str, Any]], ...] = (
    ("SET #q = #q + :n, note = :note", {"#q": "qty"}, {":n": {"N": "2"}, ":note": {"S": "x"}}),
    ("SET l = :empty, m = :map", None, {":empty": {"L": []}, ":map": {"M": {"b": {"L": [{"N": "1"}]}}}}),
    ("SET l = list_append(l, :more) REMOVE note", None, {":more": {"L": [{"S": "y"}]}}),
    ("SET m.b[0] = if_not_exists(m.b[0], :zero) + :n", None, {":zero": {"N": "0"}, ":n": {"N": "5"}}),
    ("SET m.c.d = :n", None, {":n": {"N": "1"}}),  # no m.c: an invalid document path
    ("ADD counter :one, tags :set", None, {":one": {"N": "1"}, ":set": {"SS": ["p", "q"]}}),
    ("DELETE tags :gone", None, {":gone": {"SS": ["p"]}}),
    ("ADD tags :set DELETE tags :gone", None, {":set": {"SS": ["r"]}, ":gone": {"SS": ["q"]}}),  # path twice
    ("SET #k = :v", {"#k": "pk"}, {":v": {"S": "b"}}),  # the key: refused
    ("SET #k = :v", {"#k": "other"}, {":v": {"S": "b"}}),  # the same string, other names: applied
    ("SET a = :v, a = :v", None, {":v": {"N": "1"}}),  # two actions on one path
    ("SET m.b = :v, m.b[0] = :v", None, {":v": {"N": "1"}}),  # overlapping paths
    ("SET a = :v SET b = :v", None, {":v": {"N": "1"}}),  # two SET clauses
    ("REMOVE #r0, #r1", {"#r0": "other", "#r1": "counter"}, {}),
    ("SET qty = qty + :s", None, {":s": {"S": "x"}}),  # a number plus a string
)  # fmt: skip


def _apply_updates(client: Any) -> list[Any]:
    outcomes: list[Any] = []
    for expression, names, values in UPDATES:
        for _ in range(2):
            request: dict[str, Any] = {
                "TableName": "t",
                "Key": {"pk": {"S": "a"}},
                "UpdateExpression": expression,
            }
            if names:
                request["ExpressionAttributeNames"] = names
            if values:
                request["ExpressionAttributeValues"] = values
            try:
                client.update_item(**request)
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
    outcomes.append(client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"])
    return outcomes


def test_updates_are_validated_and_applied_as_moto_does(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]  # noqa: PLC0415
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator  # noqa: PLC0415

    quick = _apply_updates(table)
    assert quick.count("ok") == 15  # and the rest refused, each time it was sent
    table.put_item(TableName="t", Item={"pk": {"S": "a"}, "qty": {"N": "0"}})
    monkeypatch.setattr(DepthFirstTraverser, "traverse", DepthFirstTraverser.traverse.__wrapped__)
    monkeypatch.setattr(
        UpdateExpressionValidator,
        "validate",
        UpdateExpressionValidator.validate.__wrapped__,  # type: ignore[attr-defined]
    )
    assert _apply_updates(table) == quick


def test_an_expression_passes_the_checks_of_its_shape_once_per_names(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.parsing import validators  # noqa: PLC0415

    counted: list[str] = []
    verify = validators.ActionCountValidator.verify_action_counts

    def counting(self: Any, node: Any) -> Any:
        counted.append(type(node).__name__)
        return verify(self, node)

    monkeypatch.setattr(validators.ActionCountValidator, "verify_action_counts", counting)

    def update(names: dict[str, str]) -> None:
        table.update_item(
            TableName="t",
            Key={"pk": {"S": "b"}},
            UpdateExpression="SET #x = :v + :v, #y = :v",  # not plain (an addition): moto's validator
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":v": {"N": "1"}},
        )

    update({"#x": "left", "#y": "right"})
    checked = len(counted)
    assert checked > 0
    update({"#x": "left", "#y": "right"})
    assert len(counted) == checked  # passed before with these names: not checked again
    with pytest.raises(ClientError, match="Two document paths overlap"):
        update({"#x": "same", "#y": "same"})  # other names are checked, and refused
    assert len(counted) > checked


def test_a_condition_is_parsed_once_per_request_and_decides_with_its_own_values(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser  # noqa: PLC0415

    parses: list[str] = []
    paths = ConditionExpressionParser._parse_paths

    def counting(self: Any, nodes: Any) -> Any:
        parses.append(self.condition_expression)
        return paths(self, nodes)

    monkeypatch.setattr(ConditionExpressionParser, "_parse_paths", counting)

    def put(qty: int, at_most: int) -> None:
        table.put_item(
            TableName="t",
            Item={"pk": {"S": "a"}, "qty": {"N": str(qty)}},
            ConditionExpression="#q <= :most",
            ExpressionAttributeNames={"#q": "qty"},
            ExpressionAttributeValues={":most": {"N": str(at_most)}},
        )

    put(5, 0)  # qty 0 <= 0
    assert parses == ["#q <= :most"]  # validated and evaluated with one parse
    with pytest.raises(ClientError) as refused:
        put(6, 4)  # qty 5 is not <= 4: the same strings, this request's value
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    put(7, 5)
    assert len(parses) == 3
    table.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET qty = :n",
                        "ConditionExpression": "qty = :was",
                        "ExpressionAttributeValues": {":n": {"N": "8"}, ":was": {"N": "7"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "b"}},
                                "ConditionExpression": "qty < :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
    )  # fmt: skip
    assert parses[3:] == ["qty = :was", "qty < :one", "attribute_not_exists(pk)"]
    assert table.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["qty"] == {"N": "8"}


def test_sqs_reads_the_same_clock_and_hides_a_received_message_for_its_timeout() -> None:
    import time  # noqa: PLC0415

    from moto.core import utils  # noqa: PLC0415
    from moto.sqs import models  # noqa: PLC0415

    moto_speed.install()
    sqs_models: Any = models
    assert abs(sqs_models.unix_time_millis() - utils.unix_time_millis()) < 50
    assert abs(sqs_models.unix_time() - utils.unix_time()) < 0.05
    assert sqs_models.unix_time_millis(utils.utcfromtimestamp(1)) == 1000.0  # a date: moto's own
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
        assert "Messages" not in sqs.receive_message(QueueUrl=url)  # delayed
        time.sleep(1.1)
        first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
        assert [m["Body"] for m in first] == ["later"]
        assert "Messages" not in sqs.receive_message(QueueUrl=url)  # in flight
        time.sleep(1.1)
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["later"]


class _Request:
    """What werkzeug's request logging reads of a request handler."""

    path, command, request_version, requestline = "/", "POST", "HTTP/1.1", "POST / HTTP/1.1"
    _control_char_table = str.maketrans({c: f"\\x{c:02x}" for c in range(32)})

    def __init__(self) -> None:
        self.logged: list[str] = []

    def log(self, kind: str, message: str, *args: Any) -> None:
        self.logged.append(message % args)


@pytest.mark.parametrize(("level", "logged"), [(logging.WARNING, 0), (logging.INFO, 1), (logging.NOTSET, 1)])
def test_a_request_line_is_made_only_when_the_werkzeug_logger_keeps_it(level: int, logged: int) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415

    moto_speed.install()
    werkzeug = logging.getLogger("werkzeug")
    before = werkzeug.level
    werkzeug.setLevel(level)
    request = _Request()
    try:
        MotoRequestHandler.log_request(request, 200, 18)  # type: ignore[arg-type]
    finally:
        werkzeug.setLevel(before)
    assert len(request.logged) == logged
    assert all(line == '"POST / HTTP/1.1" 200 18' for line in request.logged)


def test_a_connection_stays_open_for_the_next_request_unless_the_client_closes_it() -> None:
    import http.client  # noqa: PLC0415

    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    moto_speed.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sqs = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        answers = []
        for name in ("q1", "q2", "q3"):  # a body each: read whole, so the next request line is found
            body = f"Action=CreateQueue&QueueName={name}&Version=2012-11-05"
            connection.request("POST", "/", body=body, headers=sqs)
            response = connection.getresponse()
            answers.append(
                (response.status, response.getheader("Connection"), name in response.read().decode())
            )
        assert answers == [(200, None, True)] * 3
        assert connection.sock is not None  # one connection served all three
        connection.request("POST", "/", body="Action=ListQueues", headers={**sqs, "Connection": "close"})
        response = connection.getresponse()
        assert (response.status, response.getheader("Connection")) == (200, "close")
        assert "q3" in response.read().decode()
        connection.close()
    finally:
        server.stop()
