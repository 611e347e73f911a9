"""MarketDataFunction's handler on the sample events, against DynamoDB in moto (in-process)."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meridian.consumers import PoisonMessageError
from meridian.kpl import aggregate
from meridian.protocol import Fill
from meridian_hotpath.marketdata import top_of_book_record, trade_record
from meridian_local.delivery.lambda_events import LocalLambdaContext, kinesis_event
from meridian_local.delivery.pollers import Handler, load_handler
from tests.metrics_catalogue import FUNCTION_METRICS, assert_catalogued, emit_as_deployed, emitted, totals
from tests.unit.market_data.conftest import TABLE

REPO = Path(__file__).resolve().parents[3]
T0 = 1_772_461_800_000_000_000
HOUR_NS = 3_600 * 1_000_000_000


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


def _tape(dynamodb: Any, symbol: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :trade)",
        ExpressionAttributeValues={":pk": {"S": f"SYMBOL#{symbol}"}, ":trade": {"S": "TRADE#"}},
    )["Items"]
    return items


def test_the_copies_a_restarted_node_re_sends_leave_the_tape_as_the_first_copy_wrote_it(
    handler: Handler, dynamodb: Any
) -> None:
    """At least once from the node, once on the tape: a redelivery, then a re-send an hour later
    (its re-send time), change nothing; a re-sent trade the tape never got is written."""
    fills = [Fill(1, 41, n, "AAPL", 19025, 100, 1, 5, 6, "A", "B", "ca", "cb", 0, 0) for n in (1, 2)]
    first = trade_record(fills[0], T0).to_json()
    handler(kinesis_event([first]), LocalLambdaContext())
    written = _tape(dynamodb, "AAPL")
    handler(kinesis_event([first], first_sequence=2), LocalLambdaContext())  # a retried batch
    assert _tape(dynamodb, "AAPL") == written
    resent = [trade_record(fill, T0 + HOUR_NS, resent=True).to_json() for fill in fills]
    response: Any = handler(kinesis_event(resent, first_sequence=3), LocalLambdaContext())
    assert response["batchItemFailures"] == []
    tape = _tape(dynamodb, "AAPL")
    assert tape[0] == written[0]
    assert [(t["execution_id"]["S"], t["occurred_at"]["S"]) for t in tape] == [
        ("0-1", "2026-03-02T14:30:00.000000+00:00"),
        ("0-2", "2026-03-02T15:30:00.000000+00:00"),  # first delivered as a re-send
    ]


def test_metrics_carry_the_catalogued_names_units_and_dimensions(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = emit_as_deployed(monkeypatch, "MarketDataFunction")
    handler = load_handler(REPO / "functions" / "market_data", "app.lambda_handler")
    monkeypatch.setattr(sys.modules["market_data.consumer"], "_writer", None)
    capsys.readouterr()
    for sample in ("kinesis-batch.json", "poison-record.json"):
        handler(json.loads((REPO / "events" / "market_data" / sample).read_text()), LocalLambdaContext())
    metrics = emitted(capsys.readouterr().out)
    assert assert_catalogued("market_data", metrics, service) == set(FUNCTION_METRICS["market_data"])
    summed = totals(metrics)
    assert summed["MarketDataRecords"] > 0
    assert summed["MarketDataItemsWritten"] > 0
    assert summed["MarketDataFailures"] >= 1  # the poison record


# ---- aggregated records (KPL): many updates of one symbol in one Kinesis record --------------


def test_aggregated_and_plain_records_leave_the_same_table(handler: Handler, dynamodb: Any) -> None:
    """The node aggregates; records written before it did (or by any other writer) are plain."""
    fills = [
        Fill(1, 40 + n, n, "AAPL", 19020 + n, 10 * n, 1, 5, 6, "A", "B", "ca", "cb", 0, 0) for n in (1, 2, 3)
    ]
    trades = [trade_record(fill, T0 + fill.seq).to_json() for fill in fills]
    books = [
        top_of_book_record("AAPL", seq, (19020 + seq, 5, 19030, 7), T0 + seq).to_json() for seq in (41, 43)
    ]
    event = kinesis_event(
        [aggregate("AAPL", [trades[0], books[0], trades[1]]), trades[2], aggregate("AAPL", [books[1]])]
    )
    response: Any = handler(event, LocalLambdaContext())
    assert response["batchItemFailures"] == []
    assert [(t["execution_id"]["S"], t["node_seq"]["N"]) for t in _tape(dynamodb, "AAPL")] == [
        ("0-1", "41"),
        ("0-2", "42"),
        ("0-3", "43"),
    ]
    book = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": "BOOK"}})["Item"]
    assert (book["node_seq"]["N"], book["bid_price"]["N"]) == ("43", "190.63")


def test_an_aggregated_record_with_one_poison_update_fails_whole_and_alone(
    handler: Handler, dynamodb: Any
) -> None:
    good = trade_record(Fill(1, 7, 7, "AAPL", 19025, 100, 1, 5, 6, "A", "B", "ca", "cb", 0, 0), T0).to_json()
    other = trade_record(Fill(1, 8, 8, "MSFT", 42000, 100, 1, 5, 6, "A", "B", "ca", "cb", 0, 0), T0).to_json()
    event = kinesis_event([aggregate("AAPL", [good, b'{"type":"lifecycle"}']), aggregate("MSFT", [other])])
    response: Any = handler(event, LocalLambdaContext())
    assert response["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}
    ]
    assert _tape(dynamodb, "AAPL") == [], "none of the poison record's updates"
    assert len(_tape(dynamodb, "MSFT")) == 1
