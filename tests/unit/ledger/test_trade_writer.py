"""The idempotent trade writer and the read queries, against real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meridian.ledger import (
    ExecutionIdCollisionError,
    InvalidCursorError,
    positions,
    rebuild_from_history,
    record_trade,
    trades,
)
from meridian.ledger.positions import Position
from tests.pipeline_factories import trade

D = Decimal
Conn = psycopg.Connection[Any]


def _position(conn: Conn, account: str, symbol: str = "AAPL") -> tuple[int, Decimal, Decimal, int]:
    row = conn.execute(
        "SELECT quantity, average_price, realized_pnl, trade_count FROM positions"
        " WHERE account = %s AND symbol = %s",
        (account, symbol),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2], int(row[3])


def test_a_trade_moves_both_positions(ledger_conn: Conn) -> None:
    assert record_trade(ledger_conn, trade("e1", price="100.50", quantity=10, buyer="A", seller="B"))
    assert _position(ledger_conn, "A") == (10, D("100.5"), D(0), 1)
    assert _position(ledger_conn, "B") == (-10, D("100.5"), D(0), 1)


def test_a_redelivered_trade_changes_nothing(ledger_conn: Conn) -> None:
    original = trade("e1", price="100", quantity=10, buyer="A", seller="B")
    assert record_trade(ledger_conn, original)
    before = ledger_conn.execute("SELECT * FROM positions ORDER BY account").fetchall()
    assert not record_trade(ledger_conn, original)
    # Delivery metadata may differ between deliveries (event id, time, node seq): still the same trade.
    again = original.model_copy(update={"event_id": "other", "node_seq": 99, "price": D("100.0000")})
    assert not record_trade(ledger_conn, again)
    assert ledger_conn.execute("SELECT * FROM positions ORDER BY account").fetchall() == before
    assert ledger_conn.execute("SELECT count(*) FROM trades").fetchone() == (1,)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"quantity": 999}, "quantity 10 vs 999"),
        ({"price": D("100.01")}, "price 100.0000000000 vs 100.0100000000"),
        ({"symbol": "MSFT"}, "symbol AAPL vs MSFT"),
        ({"aggressor_side": "SELL"}, "aggressor_side BUY vs SELL"),
        ({"buy_account": "C"}, "buy_account A vs C"),
        ({"sell_account": "C"}, "sell_account B vs C"),
        ({"buy_order_id": "ord_x"}, "buy_order_id"),
        ({"sell_order_id": "ord_y"}, "sell_order_id"),
    ],
)
def test_a_different_trade_under_a_recorded_execution_id_is_refused_by_name(
    ledger_conn: Conn, change: dict[str, Any], named: str
) -> None:
    original = trade("1-7", price="100", quantity=10, buyer="A", seller="B")
    assert record_trade(ledger_conn, original)
    before = ledger_conn.execute("SELECT * FROM positions ORDER BY account").fetchall()
    with pytest.raises(ExecutionIdCollisionError) as collision:
        record_trade(ledger_conn, original.model_copy(update=change))
    assert str(collision.value).startswith("execution id collision: two different trades share '1-7'")
    assert named in str(collision.value)
    assert ledger_conn.execute("SELECT * FROM positions ORDER BY account").fetchall() == before
    assert ledger_conn.execute("SELECT count(*) FROM trades").fetchone() == (1,)


def test_realized_pnl_and_flip_are_stored_exactly(ledger_conn: Conn) -> None:
    record_trade(ledger_conn, trade("e1", price="100", quantity=10, buyer="A", seller="B"))
    record_trade(ledger_conn, trade("e2", price="90", quantity=25, buyer="B", seller="A"))
    assert _position(ledger_conn, "A") == (-15, D("90"), D("-100"), 2)
    assert _position(ledger_conn, "B") == (15, D("90"), D("100"), 2)


def test_a_self_trade_nets_to_nothing(ledger_conn: Conn) -> None:
    record_trade(ledger_conn, trade("e1", price="50", quantity=3, buyer="W", seller="W"))
    assert _position(ledger_conn, "W") == (0, D(0), D(0), 2)


def test_a_failure_inside_the_transaction_rolls_back_the_trade(ledger_conn: Conn) -> None:
    ledger_conn.execute("ALTER TABLE positions ADD CONSTRAINT no_shorts CHECK (quantity >= 0)")
    with pytest.raises(psycopg.errors.CheckViolation):
        record_trade(ledger_conn, trade("e1", buyer="A", seller="B"))
    assert ledger_conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)
    assert ledger_conn.execute("SELECT count(*) FROM positions").fetchone() == (0,)


def test_positions_query_for_one_account_or_all(ledger_conn: Conn) -> None:
    record_trade(ledger_conn, trade("e1", symbol="AAPL", buyer="A", seller="B"))
    record_trade(ledger_conn, trade("e2", symbol="MSFT", price="420", buyer="A", seller="C"))
    mine = positions(ledger_conn, "A")
    assert [(p.symbol, p.quantity) for p in mine] == [("AAPL", 10), ("MSFT", 10)]
    assert [(p.account, p.symbol) for p in positions(ledger_conn, None)] == [
        ("A", "AAPL"),
        ("A", "MSFT"),
        ("B", "AAPL"),
        ("C", "MSFT"),
    ]
    assert positions(ledger_conn, "nobody") == []


def test_trades_query_pages_newest_first(ledger_conn: Conn) -> None:
    for i in range(7):
        record_trade(ledger_conn, trade(f"e{i}", buyer="A" if i % 2 else "B", seller="C"))
    record_trade(ledger_conn, trade("other", symbol="MSFT", price="420", buyer="A", seller="C"))
    page = trades(ledger_conn, "C", symbol="AAPL", limit=3)
    seen = [t.execution_id for t in page.items]
    while page.next_cursor:
        page = trades(ledger_conn, "C", symbol="AAPL", limit=3, cursor=page.next_cursor)
        seen += [t.execution_id for t in page.items]
    assert seen == [f"e{i}" for i in reversed(range(7))]
    a_trades = trades(ledger_conn, "A", None, limit=10)
    assert [t.execution_id for t in a_trades.items] == ["other", "e5", "e3", "e1"]
    assert a_trades.next_cursor is None
    assert a_trades.items[0].side_for("A") == "BUY"
    assert len(trades(ledger_conn, None, None, limit=100).items) == 8


@pytest.mark.parametrize("cursor", ["", "not-base64!", "dDE6YWJj", "eDE6MTI="])
def test_foreign_cursors_are_refused(ledger_conn: Conn, cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        trades(ledger_conn, None, None, limit=5, cursor=cursor)


@pytest.mark.parametrize("limit", [0, 501])
def test_page_size_is_bounded(ledger_conn: Conn, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        trades(ledger_conn, None, None, limit=limit)


def test_rebuild_matches_the_stored_positions(ledger_conn: Conn) -> None:
    record_trade(ledger_conn, trade("e1", price="10", quantity=3, buyer="A", seller="B"))
    record_trade(ledger_conn, trade("e2", price="11", quantity=5, buyer="B", seller="A"))
    rebuilt = rebuild_from_history(ledger_conn)
    assert rebuilt[("A", "AAPL")] == Position(-2, D("22"), D("3"), 2)
    assert rebuilt[("B", "AAPL")] == Position(2, D("22"), D("-3"), 2)
    stored = {(p.account, p.symbol): p for p in positions(ledger_conn, None)}
    for key, position in rebuilt.items():
        assert (stored[key].quantity, stored[key].cost_basis, stored[key].realized_pnl) == (
            position.quantity,
            position.cost_basis,
            position.realized_pnl,
        )
