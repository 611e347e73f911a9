"""The idempotent trade writer: one trade and both positions it moves, in one transaction.

The trade row is inserted with ``ON CONFLICT (execution_id) DO NOTHING``; only when that insert
happened are the positions updated, so a redelivered trade changes nothing. When it conflicts,
the stored trade must be the same trade (symbol, price, quantity, aggressor side, both accounts
and both order ids): two different trades under one execution id mean a misconfigured fleet (two
nodes with one node number) or a corrupted record, and :class:`ExecutionIdCollisionError` sends
the message to the DLQ instead of dropping the second trade as a duplicate. Position rows are
locked in (account, symbol) order, so two trades between the same accounts in opposite
directions cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from meridian.events import OrderCancelled, TradeExecuted
from meridian.ledger.positions import Fill, Position, apply_fill, rebuild_positions, trade_fills


class ExecutionIdCollisionError(RuntimeError):
    """A trade whose execution id the ledger already holds for a different trade."""

    def __init__(self, execution_id: str, differences: list[str]) -> None:
        super().__init__(
            f"execution id collision: two different trades share {execution_id!r} "
            f"(stored vs new: {'; '.join(differences)})"
        )
        self.execution_id = execution_id
        self.differences = differences


_INSERT_TRADE = """
INSERT INTO trades (
    execution_id, event_id, symbol, price, quantity, aggressor_side, buy_order_id, sell_order_id,
    buy_account, sell_account, buy_client_order_id, sell_client_order_id, node_seq, occurred_at
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (execution_id) DO NOTHING
RETURNING ledger_seq
"""

# The stored trade's economic fields, and the new price as the column stores it (NUMERIC(38, 10)).
_STORED_TRADE = """
SELECT symbol, price, CAST(%s AS NUMERIC(38, 10)), quantity, aggressor_side, buy_account, sell_account,
       buy_order_id, sell_order_id
FROM trades WHERE execution_id = %s
"""

_ENSURE_POSITIONS = """
INSERT INTO positions (account, symbol)
SELECT account, symbol FROM unnest(%s::text[], %s::text[]) AS k(account, symbol)
ORDER BY account, symbol
ON CONFLICT (account, symbol) DO NOTHING
"""

# LockRows runs above the sort, so rows are locked in (account, symbol) order.
_LOCK_POSITIONS = """
SELECT p.account, p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.trade_count
FROM positions p
JOIN unnest(%s::text[], %s::text[]) AS k(account, symbol) USING (account, symbol)
ORDER BY p.account, p.symbol
FOR UPDATE OF p
"""

_UPDATE_POSITION = """
UPDATE positions
SET quantity = %s, cost_basis = %s, average_price = %s, realized_pnl = %s, trade_count = %s,
    last_ledger_seq = %s, updated_at = now()
WHERE account = %s AND symbol = %s
"""


def record_trade(conn: psycopg.Connection[Any], trade: TradeExecuted) -> bool:
    """Record ``trade`` and move both positions; False (and no change) if it was already recorded.

    Raises ExecutionIdCollisionError when the ledger holds a different trade under its execution id.
    """
    with conn.transaction():
        row = conn.execute(
            _INSERT_TRADE,
            (
                trade.execution_id,
                trade.event_id,
                trade.symbol,
                trade.price,
                trade.quantity,
                trade.aggressor_side,
                trade.buy_order_id,
                trade.sell_order_id,
                trade.buy_account,
                trade.sell_account,
                trade.buy_client_order_id,
                trade.sell_client_order_id,
                trade.node_seq,
                trade.occurred_at,
            ),
        ).fetchone()
        if row is None:
            _check_same_trade(conn, trade)
            return False
        ledger_seq = int(row[0])
        fills = trade_fills(trade.symbol, trade.price, trade.quantity, trade.buy_account, trade.sell_account)
        keys = sorted({(fill.account, fill.symbol) for fill in fills})
        accounts, symbols = [k[0] for k in keys], [k[1] for k in keys]
        conn.execute(_ENSURE_POSITIONS, (accounts, symbols))
        current = {
            (account, symbol): Position(int(quantity), cost, realized, int(count))
            for account, symbol, quantity, cost, realized, count in conn.execute(
                _LOCK_POSITIONS, (accounts, symbols)
            )
        }
        for fill in fills:
            key = (fill.account, fill.symbol)
            current[key] = apply_fill(current[key], fill.quantity, fill.price)
        with conn.cursor() as cur:
            cur.executemany(
                _UPDATE_POSITION,
                [
                    (
                        p.quantity,
                        p.cost_basis,
                        p.average_price,
                        p.realized_pnl,
                        p.trade_count,
                        ledger_seq,
                        account,
                        symbol,
                    )
                    for (account, symbol), p in sorted(current.items())
                ],
            )
        return True


_INSERT_CANCELLATION = """
INSERT INTO order_cancellations (
    event_id, order_id, client_order_id, account, symbol, cancelled_quantity, reason, node_seq, occurred_at
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


def record_cancellation(conn: psycopg.Connection[Any], cancel: OrderCancelled) -> bool:
    """Record why an order lost its open quantity; False (no change) if the event was recorded."""
    with conn.transaction():
        row = conn.execute(
            _INSERT_CANCELLATION,
            (
                cancel.event_id,
                cancel.order_id,
                cancel.client_order_id,
                cancel.account,
                cancel.symbol,
                cancel.cancelled_quantity,
                cancel.reason,
                cancel.node_seq,
                cancel.occurred_at,
            ),
        ).fetchone()
    return row is not None


def _check_same_trade(conn: psycopg.Connection[Any], trade: TradeExecuted) -> None:
    stored = conn.execute(_STORED_TRADE, (trade.price, trade.execution_id)).fetchone()
    assert stored is not None, "ON CONFLICT without a stored row"
    symbol, price, new_price, quantity, side, buy_account, sell_account, buy_order, sell_order = stored
    pairs = {
        "symbol": (symbol, trade.symbol),
        "price": (price, new_price),
        "quantity": (int(quantity), trade.quantity),
        "aggressor_side": (side, trade.aggressor_side),
        "buy_account": (buy_account, trade.buy_account),
        "sell_account": (sell_account, trade.sell_account),
        "buy_order_id": (buy_order, trade.buy_order_id),
        "sell_order_id": (sell_order, trade.sell_order_id),
    }
    differences = [f"{name} {old} vs {new}" for name, (old, new) in pairs.items() if old != new]
    if differences:
        raise ExecutionIdCollisionError(trade.execution_id, differences)


def fills_in_ledger_order(conn: psycopg.Connection[Any]) -> Iterable[Fill]:
    """Every fill the ledger has recorded, in the order it applied them."""
    rows = conn.execute(
        "SELECT symbol, price, quantity, buy_account, sell_account FROM trades ORDER BY ledger_seq"
    )
    for symbol, price, quantity, buy_account, sell_account in rows:
        yield from trade_fills(symbol, price, int(quantity), buy_account, sell_account)


def rebuild_from_history(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], Position]:
    """Positions recomputed from the trade history alone (the check on the incremental ones)."""
    return rebuild_positions(fills_in_ledger_order(conn))
