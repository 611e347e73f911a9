"""LedgerFunction's handler: SQS batches in, one ledger transaction per trade, poison reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from meridian import db
from meridian_local.delivery.lambda_events import LocalLambdaContext, sqs_event
from meridian_local.delivery.pollers import Handler, load_handler
from tests.metrics_catalogue import FUNCTION_METRICS, assert_catalogued, emit_as_deployed, emitted, totals
from tests.pipeline_factories import accepted, envelope, trade

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def handler(ledger_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Meridian")
    db.reset_shared_connection()
    yield load_handler(REPO / "functions" / "ledger", "app.lambda_handler")
    db.reset_shared_connection()


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        return int(row[0]) if row else 0


def test_poison_messages_are_reported_and_the_rest_applied(
    handler: Handler, ledger_database_url: str
) -> None:
    good = envelope(trade("exe-1", buyer="A", seller="B"))
    wrong_version = envelope(trade("exe-2"))
    wrong_version["detail"]["schema_version"] = 2
    unknown_type = {**envelope(trade("exe-3")), "detail-type": "trade.executed.v9"}
    bad_schema = envelope(trade("exe-4"))
    del bad_schema["detail"]["symbol"]
    event = sqs_event(
        [
            good,
            "{not json",
            wrong_version,
            unknown_type,
            bad_schema,
            envelope(accepted("A")),
            good,  # a redelivery inside the same batch
        ]
    )
    response: Any = handler(event, LocalLambdaContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    ids = [r["messageId"] for r in event["Records"]]
    assert failed == set(ids[1:6])
    assert _count(ledger_database_url, "trades") == 1
    assert _count(ledger_database_url, "positions") == 2


def test_a_colliding_execution_id_is_reported_not_dropped(handler: Handler, ledger_database_url: str) -> None:
    first = trade("1-5", buyer="A", seller="B", quantity=10)
    event = sqs_event([envelope(first), envelope(first.model_copy(update={"quantity": 11}))])
    response: Any = handler(event, LocalLambdaContext())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [event["Records"][1]["messageId"]]
    assert _count(ledger_database_url, "trades") == 1


def test_a_database_outage_fails_the_records_not_the_container(
    handler: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    db.reset_shared_connection()
    event = sqs_event([envelope(trade("exe-9"))])
    response: Any = handler(event, LocalLambdaContext())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [event["Records"][0]["messageId"]]


def test_sample_events_run_through_the_handler(handler: Handler, ledger_database_url: str) -> None:
    samples = sorted((REPO / "events" / "ledger").glob("*.json"))
    assert samples, "events/ledger/ holds sample events for sam local invoke"
    for sample in samples:
        event = json.loads(sample.read_text())
        response: Any = handler(event, LocalLambdaContext())
        poison = {r["messageId"] for r in event["Records"] if r["messageId"].startswith("poison")}
        assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == poison, sample.name
    assert _count(ledger_database_url, "trades") >= 1


def test_metrics_carry_the_catalogued_names_units_and_dimensions(
    ledger_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    service = emit_as_deployed(monkeypatch, "LedgerFunction")
    db.reset_shared_connection()
    handler = load_handler(REPO / "functions" / "ledger", "app.lambda_handler")
    first = trade("m-1", buyer="A", seller="B", quantity=10)
    capsys.readouterr()
    handler(
        sqs_event([envelope(first), envelope(first), envelope(first.model_copy(update={"quantity": 11}))]),
        LocalLambdaContext(),
    )
    metrics = emitted(capsys.readouterr().out)
    assert assert_catalogued("ledger", metrics, service) == set(FUNCTION_METRICS["ledger"])
    assert totals(metrics) == {
        "LedgerMessages": 3,
        "TradesRecorded": 1,
        "DuplicateTrades": 1,
        "ExecutionIdCollisions": 1,
    }
