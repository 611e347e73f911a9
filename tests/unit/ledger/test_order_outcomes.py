"""The ledger's order outcomes: cancellations with their reason, one order's fills, one spelling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian import db
from meridian.ledger import cancellations, order_fills, record_cancellation, record_trade
from meridian_local.delivery.lambda_events import LocalLambdaContext, sqs_event
from meridian_local.delivery.pollers import Handler, load_handler
from tests.pipeline_factories import cancelled, envelope, trade

REPO = Path(__file__).resolve().parents[3]
Conn = psycopg.Connection[Any]


def test_a_cancellation_is_recorded_once_with_its_reason(ledger_conn: Conn) -> None:
    event = cancelled("ACC-A", reason="FOK_UNFILLED")
    assert record_cancellation(ledger_conn, event)
    assert not record_cancellation(ledger_conn, event)  # a redelivery
    rows = cancellations(ledger_conn, "ACC-A")
    assert [(r.order_id, r.reason, r.cancelled_quantity) for r in rows] == [
        (event.order_id, "FOK_UNFILLED", 10)
    ]
    assert cancellations(ledger_conn, "ACC-B") == []


def test_an_orders_fills_are_every_trade_on_either_side_oldest_first(ledger_conn: Conn) -> None:
    first, second, other = trade("e1", price="190.00"), trade("e2", price="190.50"), trade("e3")
    for t in (first, second, other):
        record_trade(ledger_conn, t)
    # The query looks at both sides: the order is e1's buyer and (rewritten here) e2's seller.
    ledger_conn.execute(
        "UPDATE trades SET sell_order_id = %s WHERE execution_id = 'e2'", (first.buy_order_id,)
    )
    fills = order_fills(ledger_conn, first.buy_order_id)
    assert [(f.execution_id, str(f.price)) for f in fills] == [
        ("e1", "190.0000000000"),
        ("e2", "190.5000000000"),
    ]
    assert order_fills(ledger_conn, "nobody") == []


def test_positions_spell_realized_pnl(ledger_conn: Conn) -> None:
    columns = {
        r[0]
        for r in ledger_conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'positions'"
        )
    }
    assert "realized_pnl" in columns
    assert "realised_pnl" not in columns


@pytest.fixture
def handler(ledger_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Meridian")
    db.reset_shared_connection()
    yield load_handler(REPO / "functions" / "ledger", "app.lambda_handler")
    db.reset_shared_connection()


def test_the_ledger_function_records_trades_and_cancellations(
    handler: Handler, ledger_database_url: str
) -> None:
    cancel = cancelled("ACC-A", reason="SELF_TRADE")
    event = sqs_event([envelope(trade("exe-1", buyer="A", seller="B")), envelope(cancel), envelope(cancel)])
    response: Any = handler(event, LocalLambdaContext())
    assert response["batchItemFailures"] == []
    with psycopg.connect(ledger_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (1,)
        assert conn.execute("SELECT order_id, reason FROM order_cancellations").fetchall() == [
            (cancel.order_id, "SELF_TRADE")
        ]
