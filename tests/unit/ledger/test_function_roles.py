"""V003: a database role per function, each with only the privileges its code uses.

Run against the embedded PostgreSQL: each role connects (as it would with its IAM token on RDS,
where the roles also join rds_iam) and what its function does succeeds while the rest is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from meridian.ledger import migrate, queries, record_trade
from tests.pg import create_database
from tests.pipeline_factories import trade

TRADE = (
    "INSERT INTO trades (execution_id, event_id, symbol, price, quantity, aggressor_side, buy_order_id,"
    " sell_order_id, buy_account, sell_account, buy_client_order_id, sell_client_order_id, node_seq,"
    " occurred_at) VALUES (%s, 'e', 'AAPL', 1, 1, 'BUY', 'b', 's', 'A', 'B', 'cb', 'cs', 1, now())"
)
POSITION = "INSERT INTO positions (account, symbol, quantity, cost_basis) VALUES (%s, 'AAPL', 1, 1)"
ACTIVITY = (
    "INSERT INTO surveillance_activity (event_id, account, kind, symbol, occurred_at)"
    " VALUES (%s, 'A', 'order', 'AAPL', now())"
)
FINDING = (
    "INSERT INTO surveillance_findings (finding_id, rule, severity, account, event_id, occurred_at, summary)"
    " VALUES (%s, 'r', 'LOW', 'A', 'e', now(), 's')"
)

CANCELLATION = (
    "INSERT INTO order_cancellations (event_id, order_id, client_order_id, account, symbol,"
    " cancelled_quantity, reason, node_seq, occurred_at)"
    " VALUES (%s, 'o', 'c', 'A', 'AAPL', 1, 'USER', 1, now())"
)

Statement = tuple[str, Callable[[int], tuple[Any, ...]]]
WRITE_TRADE: Statement = (TRADE, lambda i: (f"x{i}",))
WRITE_POSITION: Statement = (POSITION, lambda i: (f"A{i}",))
UPDATE_POSITION: Statement = ("UPDATE positions SET quantity = quantity WHERE account = 'none'", lambda _: ())
READ_TRADES: Statement = ("SELECT count(*) FROM trades", lambda _: ())
READ_POSITIONS: Statement = ("SELECT count(*) FROM positions", lambda _: ())
WRITE_ACTIVITY: Statement = (ACTIVITY, lambda i: (f"e{i}",))
WRITE_FINDING: Statement = (FINDING, lambda i: (f"f{i}",))
ALERT_FINDING: Statement = (
    "UPDATE surveillance_findings SET alerted_at = now() WHERE event_id = 'none'",
    lambda _: (),
)
READ_HISTORY: Statement = ("SELECT count(*) FROM schema_migrations", lambda _: ())
WRITE_CANCELLATION: Statement = (CANCELLATION, lambda i: (f"c{i}",))
READ_CANCELLATIONS: Statement = ("SELECT count(*) FROM order_cancellations", lambda _: ())
DELETE_TRADES: Statement = ("DELETE FROM trades", lambda _: ())
CREATE_TABLE: Statement = ("CREATE TABLE intruder (x int)", lambda _: ())
EVERYTHING = [
    WRITE_TRADE,
    WRITE_POSITION,
    UPDATE_POSITION,
    READ_TRADES,
    READ_POSITIONS,
    WRITE_ACTIVITY,
    WRITE_FINDING,
    ALERT_FINDING,
    READ_HISTORY,
    WRITE_CANCELLATION,
    READ_CANCELLATIONS,
    DELETE_TRADES,
    CREATE_TABLE,
]
ALLOWED = {
    "meridian_ledger": [
        WRITE_TRADE,
        WRITE_POSITION,
        UPDATE_POSITION,
        READ_TRADES,
        READ_POSITIONS,
        WRITE_CANCELLATION,
        READ_CANCELLATIONS,
    ],
    "meridian_surveillance": [WRITE_ACTIVITY, WRITE_FINDING, ALERT_FINDING],
    "meridian_orders_api": [READ_TRADES, READ_POSITIONS, READ_CANCELLATIONS],
    "meridian_compliance": [READ_TRADES],
    "meridian_integrity": [READ_TRADES],
    "meridian_migrations": [READ_HISTORY],
}


def _as(url: str, role: str) -> str:
    params: dict[str, Any] = conninfo_to_dict(url)
    params.update(user=role, password="")
    return make_conninfo(**params)


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_function_role_may_do_what_its_function_does_and_nothing_else(
    ledger_database_url: str, role: str
) -> None:
    with psycopg.connect(_as(ledger_database_url, role), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
        for i, (sql, args) in enumerate(EVERYTHING):
            allowed = (sql, args) in ALLOWED[role]
            try:
                conn.execute(sql.encode(), args(i))
            except psycopg.errors.InsufficientPrivilege:
                assert not allowed, f"{role} was refused: {sql}"
            else:
                assert allowed, f"{role} may: {sql}"
        assert conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone() == (False, False, False)


def test_the_roles_survive_a_second_database_on_the_same_server(
    postgres_url: str, ledger_database_url: str
) -> None:
    """Roles are cluster-wide: migrating another ledger on the same server reuses them."""
    second = create_database(postgres_url)
    with psycopg.connect(second, autocommit=True) as conn:
        report = migrate(conn)
    assert "V003__function_roles" in report.applied
    with psycopg.connect(_as(second, "meridian_ledger"), autocommit=True) as conn:
        conn.execute(TRADE.encode(), ("y1",))


def test_the_ledger_and_read_paths_run_as_their_roles(ledger_database_url: str) -> None:
    """The real code, not hand-written SQL: the trade writer (locks positions FOR UPDATE) as the
    ledger's role, the order API's queries as its role."""
    with psycopg.connect(_as(ledger_database_url, "meridian_ledger"), autocommit=True) as conn:
        first = trade("e1", price="100.50", quantity=10, buyer="A", seller="B")
        assert record_trade(conn, first)
        assert not record_trade(conn, first)  # a redelivery: the idempotency check reads trades
        assert record_trade(conn, trade("e2", price="101", quantity=4, buyer="B", seller="A"))
    with psycopg.connect(_as(ledger_database_url, "meridian_orders_api"), autocommit=True) as conn:
        assert {p.account for p in queries.positions(conn, None)} == {"A", "B"}
        assert len(queries.trades(conn, "A", None, 10, None).items) == 2
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            record_trade(conn, trade("e3", price="1", quantity=1, buyer="A", seller="B"))
