"""ExecutionsFunction: the drop copy on the executions stream -> trade.executed.v1 on the bus (moto)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from executions.consumer import UnreadableRecordAtHeadError, consume
from moto import mock_aws

from meridian import aws_clients
from meridian.consumers import parse_queued_event
from meridian.dropcopy import DropCopyError, parse_drop_copy
from meridian.events import TradeExecuted
from meridian.kpl import aggregate
from meridian_local.delivery.lambda_events import LocalLambdaContext, kinesis_event
from meridian_local.delivery.pollers import Handler, load_handler
from tests.dropcopy_factories import record
from tests.metrics_catalogue import FUNCTION_METRICS, assert_catalogued, emit_as_deployed, emitted, totals

REPO = Path(__file__).resolve().parents[3]
BUS = "meridian-trading-test"


class Bus:
    """The trading bus in moto, with a rule copying every trade.executed.v1 to a queue."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        events.create_event_bus(Name=BUS)
        self.url = self.sqs.create_queue(QueueName="trades")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="trades", EventBusName=BUS, EventPattern=json.dumps({"detail-type": ["trade.executed.v1"]})
        )
        events.put_targets(Rule="trades", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])

    def trades(self) -> list[TradeExecuted]:
        found: list[TradeExecuted] = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                detail = parse_queued_event(message["Body"])
                assert isinstance(detail, TradeExecuted)
                found.append(detail)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EVENT_BUS_NAME": BUS,
        "POWERTOOLS_METRICS_NAMESPACE": "Meridian",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws_clients.reset_clients()  # clients made inside mock_aws only
    with mock_aws():
        yield Bus()
    aws_clients.reset_clients()


@pytest.fixture
def handler(bus: Bus) -> Handler:
    return load_handler(REPO / "functions" / "executions", "app.lambda_handler")


def _sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def _unreadable(record: dict[str, Any]) -> bool:
    try:
        parse_drop_copy(base64.b64decode(record["kinesis"]["data"]))
    except DropCopyError:
        return True
    return False


@pytest.mark.parametrize(
    "sample", sorted((REPO / "events" / "executions").glob("*.json")), ids=lambda p: p.name
)
def test_sample_events_run_through_the_handler(handler: Handler, bus: Bus, sample: Path) -> None:
    event = json.loads(sample.read_text())
    records = event["Records"]
    bad = next((i for i, r in enumerate(records) if _unreadable(r)), len(records))
    assert bad > 0, "a sample starts with a readable record (else the invocation fails, by design)"
    response: Any = handler(event, LocalLambdaContext(function_name="executions"))
    expected = [{"itemIdentifier": records[bad]["kinesis"]["sequenceNumber"]}] if bad < len(records) else []
    assert response == {"batchItemFailures": expected}
    before = {parse_drop_copy(base64.b64decode(r["kinesis"]["data"])).execution_id for r in records[:bad]}
    assert sorted(t.execution_id for t in bus.trades()) == sorted(before)  # each once


def test_each_execution_becomes_one_event_keyed_by_its_id(handler: Handler, bus: Bus) -> None:
    records = [record(n, quantity=n) for n in range(1, 24)]
    event = kinesis_event([*records, records[4], records[0]])  # two re-sends after a node restart
    response: Any = handler(event, LocalLambdaContext())
    assert response == {"batchItemFailures": []}
    trades = bus.trades()
    assert sorted((t.execution_id, t.quantity) for t in trades) == sorted((f"1-{n}", n) for n in range(1, 24))
    assert all(t.event_id == t.execution_id for t in trades)


def test_an_unreadable_record_stops_the_batch_there_and_is_reported(handler: Handler, bus: Bus) -> None:
    event = kinesis_event([record(1), record(2), b"{not json", record(3), {**record(4), "v": 9}])
    response: Any = handler(event, LocalLambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": _sequence_numbers(event)[2]}]}
    assert sorted(t.execution_id for t in bus.trades()) == ["1-1", "1-2"]  # 1-3 comes with the retry


def test_an_unreadable_record_heading_the_batch_fails_the_invocation_for_bisection(
    handler: Handler, bus: Bus
) -> None:
    event = kinesis_event([{**record(1), "v": 2}, record(2)])
    with pytest.raises(UnreadableRecordAtHeadError, match="drop-copy version 2 is not supported"):
        handler(event, LocalLambdaContext())
    assert bus.trades() == []


class FlakyBus:
    """PutEvents refusing every entry of an execution id in ``refuse``; records what it was sent."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.sent: list[str] = []
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        ids = [json.loads(e["Detail"])["execution_id"] for e in Entries]
        self.sent += ids
        self.calls += 1
        results = [{"ErrorCode": "InternalException"} if i in self.refuse else {"EventId": i} for i in ids]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_an_event_eventbridge_keeps_refusing_resumes_the_shard_at_its_record() -> None:
    event = kinesis_event([record(n) for n in range(1, 26)])
    events = FlakyBus(refuse={"1-14"})
    outcome = consume(event, LocalLambdaContext(), events, BUS, sleep=lambda _: None)
    assert outcome.response == {"batchItemFailures": [{"itemIdentifier": _sequence_numbers(event)[13]}]}
    assert (outcome.published, outcome.undelivered) == (19, 1)
    assert max(int(i.split("-")[1]) for i in events.sent) == 20  # the chunk after it was not sent
    assert events.sent.count("1-14") == 4  # the first try and three retries


def test_puts_go_in_chunks_of_ten_in_stream_order() -> None:
    events = FlakyBus(refuse=set())
    outcome = consume(kinesis_event([record(n) for n in range(1, 24)]), LocalLambdaContext(), events, BUS)
    assert events.sent == [f"1-{n}" for n in range(1, 24)]
    assert events.calls == 3
    assert (outcome.records, outcome.published, outcome.response) == (23, 23, {"batchItemFailures": []})


def test_metrics_carry_the_catalogued_names_units_and_dimensions(
    bus: Bus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = emit_as_deployed(monkeypatch, "ExecutionsFunction")
    handler = load_handler(REPO / "functions" / "executions", "app.lambda_handler")
    capsys.readouterr()
    records = [record(n) for n in range(1, 6)]
    handler(kinesis_event([*records, records[0], b"{not json", record(6)]), LocalLambdaContext())
    with pytest.raises(UnreadableRecordAtHeadError):
        handler(kinesis_event([b"{not json", record(7)]), LocalLambdaContext())
    metrics = emitted(capsys.readouterr().out)
    assert assert_catalogued("executions", metrics, service) == set(FUNCTION_METRICS["executions"])
    assert totals(metrics) == {
        "DropCopyRecords": 8,  # every record of the first batch
        "TradesPublished": 5,
        "DuplicateDropCopyRecords": 1,
        "UnreadableDropCopyRecords": 2,  # one mid-batch, one heading a batch
        "UndeliveredTradeEvents": 0,
    }


# ---- aggregated records (KPL): many drop-copy records of one symbol in one Kinesis record -----


def _aggregated(*groups: list[dict[str, Any]]) -> dict[str, Any]:
    """A Kinesis event whose records each aggregate one group of drop-copy records."""
    return kinesis_event([aggregate("AAPL", [json.dumps(r).encode() for r in group]) for group in groups])


def test_aggregated_and_plain_records_each_publish_every_trade_once_in_stream_order() -> None:
    events = FlakyBus(refuse=set())
    aggregated = _aggregated([record(n) for n in range(1, 8)], [record(n) for n in range(8, 15)])
    plain = kinesis_event([record(15), record(3)], first_sequence=3)  # a plain one, and a re-send
    event = {"Records": aggregated["Records"] + plain["Records"]}
    outcome = consume(event, LocalLambdaContext(), events, BUS)
    assert events.sent == [f"1-{n}" for n in range(1, 16)]
    assert (outcome.records, outcome.published, outcome.duplicates) == (16, 15, 1)
    assert outcome.response == {"batchItemFailures": []}


def test_an_aggregated_record_with_one_bad_drop_copy_is_unreadable_whole() -> None:
    events = FlakyBus(refuse=set())
    event = _aggregated([record(1), record(2)], [record(3), {**record(4), "v": 9}, record(5)], [record(6)])
    outcome = consume(event, LocalLambdaContext(), events, BUS)
    assert outcome.response == {"batchItemFailures": [{"itemIdentifier": _sequence_numbers(event)[1]}]}
    assert events.sent == ["1-1", "1-2"]  # none of the bad record's trades, nothing after it
    assert outcome.unreadable == 1


def test_a_refused_trade_inside_an_aggregated_record_resumes_at_that_record() -> None:
    events = FlakyBus(refuse={"1-12"})
    event = _aggregated([record(n) for n in range(1, 11)], [record(n) for n in range(11, 21)])
    outcome = consume(event, LocalLambdaContext(), events, BUS, sleep=lambda _: None)
    assert outcome.response == {"batchItemFailures": [{"itemIdentifier": _sequence_numbers(event)[1]}]}
    assert (outcome.published, outcome.undelivered) == (19, 1)  # the retry re-sends the second's (idempotent)
