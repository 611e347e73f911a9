"""Read queries the order API serves: positions and a keyset-paginated trade history.

Cursors are opaque to clients: ``trades`` returns ``next_cursor`` for the page after this one
(``None`` on the last page) and raises :class:`InvalidCursorError` for one it did not issue.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg import sql

MAX_PAGE_SIZE = 500
_CURSOR_PREFIX = "t1:"


class InvalidCursorError(ValueError):
    """A pagination cursor that is malformed or was not issued by :func:`trades`."""


@dataclass(frozen=True, slots=True)
class PositionRow:
    account: str
    symbol: str
    quantity: int
    average_price: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    trade_count: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TradeRow:
    execution_id: str
    symbol: str
    price: Decimal
    quantity: int
    aggressor_side: Literal["BUY", "SELL"]
    buy_account: str
    sell_account: str
    buy_order_id: str
    sell_order_id: str
    buy_client_order_id: str
    sell_client_order_id: str
    node_seq: int
    occurred_at: datetime
    ledger_seq: int

    def side_for(self, account: str) -> Literal["BUY", "SELL"]:
        """Which side ``account`` was on (BUY for a self-trade)."""
        return "BUY" if self.buy_account == account else "SELL"


@dataclass(frozen=True, slots=True)
class CancellationRow:
    order_id: str
    account: str
    symbol: str
    cancelled_quantity: int
    reason: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class TradePage:
    items: list[TradeRow]
    next_cursor: str | None


def encode_cursor(ledger_seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{ledger_seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError("cursor is not valid") from None
    if not raw.startswith(_CURSOR_PREFIX) or not raw[len(_CURSOR_PREFIX) :].isdigit():
        raise InvalidCursorError("cursor is not valid")
    return int(raw[len(_CURSOR_PREFIX) :])


def positions(conn: psycopg.Connection[Any], account: str | None) -> list[PositionRow]:
    """Positions of ``account`` (every account when None) that are open or have traded."""
    query = sql.SQL(
        "SELECT account, symbol, quantity, average_price, cost_basis, realized_pnl, trade_count, updated_at "
        "FROM positions {where} ORDER BY account, symbol"
    ).format(where=sql.SQL("WHERE account = %s") if account is not None else sql.SQL(""))
    rows = conn.execute(query, (account,) if account is not None else ()).fetchall()
    return [
        PositionRow(a, s, int(q), avg, cost, pnl, int(n), updated)
        for a, s, q, avg, cost, pnl, n, updated in rows
    ]


_TRADE_COLUMNS = sql.SQL(
    "execution_id, symbol, price, quantity, aggressor_side, buy_account, sell_account, buy_order_id, "
    "sell_order_id, buy_client_order_id, sell_client_order_id, node_seq, occurred_at, ledger_seq"
)


def trades(
    conn: psycopg.Connection[Any],
    account: str | None,
    symbol: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> TradePage:
    """Trades newest first, of ``account`` (either side) and/or ``symbol`` when given."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if account is not None:
        conditions.append(sql.SQL("(buy_account = %s OR sell_account = %s)"))
        params += [account, account]
    if symbol is not None:
        conditions.append(sql.SQL("symbol = %s"))
        params.append(symbol)
    if cursor is not None:
        conditions.append(sql.SQL("ledger_seq < %s"))
        params.append(decode_cursor(cursor))
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    query = sql.SQL("SELECT {columns} FROM trades {where} ORDER BY ledger_seq DESC LIMIT %s").format(
        columns=_TRADE_COLUMNS, where=where
    )
    rows = conn.execute(query, [*params, limit + 1]).fetchall()
    items = [_trade_row(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].ledger_seq) if len(rows) > limit else None
    return TradePage(items=items, next_cursor=next_cursor)


def _trade_row(r: Any) -> TradeRow:
    return TradeRow(
        execution_id=r[0],
        symbol=r[1],
        price=r[2],
        quantity=int(r[3]),
        aggressor_side=r[4],
        buy_account=r[5],
        sell_account=r[6],
        buy_order_id=r[7],
        sell_order_id=r[8],
        buy_client_order_id=r[9],
        sell_client_order_id=r[10],
        node_seq=int(r[11]),
        occurred_at=r[12],
        ledger_seq=int(r[13]),
    )


def order_fills(conn: psycopg.Connection[Any], order_id: str, limit: int = MAX_PAGE_SIZE) -> list[TradeRow]:
    """Every trade of one order (either side), oldest first, at most ``limit``."""
    query = sql.SQL(
        "SELECT {columns} FROM trades WHERE buy_order_id = %s OR sell_order_id = %s "
        "ORDER BY ledger_seq LIMIT %s"
    ).format(columns=_TRADE_COLUMNS)
    return [_trade_row(r) for r in conn.execute(query, (order_id, order_id, limit)).fetchall()]


def cancellations(
    conn: psycopg.Connection[Any], account: str | None, limit: int = MAX_PAGE_SIZE
) -> list[CancellationRow]:
    """Order cancellations, newest first, of ``account`` (every account when None)."""
    query = sql.SQL(
        "SELECT order_id, account, symbol, cancelled_quantity, reason, occurred_at FROM order_cancellations "
        "{where} ORDER BY occurred_at DESC, event_id LIMIT %s"
    ).format(where=sql.SQL("WHERE account = %s") if account is not None else sql.SQL(""))
    params: tuple[Any, ...] = (account, limit) if account is not None else (limit,)
    return [
        CancellationRow(o, a, s, int(q), reason, at)
        for o, a, s, q, reason, at in conn.execute(query, params).fetchall()
    ]
