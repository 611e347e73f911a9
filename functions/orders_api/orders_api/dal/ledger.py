"""Positions and trades from the post-trade ledger in PostgreSQL, through the ledger's own read
queries (``meridian.ledger.queries``) on the container's shared connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meridian.ledger import queries
from orders_api.dal.interfaces import InvalidPageTokenError, PositionRow, TradePageRows, TradeRow

Connect = Callable[[], Any]


class PostgresLedgerReader:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    def positions(self, account: str | None, symbol: str | None = None) -> list[PositionRow]:
        return [
            PositionRow(r.account, r.symbol, r.quantity, r.average_price, r.realized_pnl, r.updated_at)
            for r in queries.positions(self._connect(), account)
            if symbol is None or r.symbol == symbol
        ]

    def position(self, account: str, symbol: str) -> int:
        return next((row.quantity for row in self.positions(account, symbol)), 0)

    def trades(
        self, account: str | None, symbol: str | None, limit: int, cursor: str | None
    ) -> TradePageRows:
        try:
            page = queries.trades(self._connect(), account, symbol, limit, cursor)
        except queries.InvalidCursorError:
            raise InvalidPageTokenError("next_token is not one this API issued") from None
        rows = [_row(r) for r in page.items]
        return TradePageRows(rows, page.next_cursor)

    def order_fills(self, order_id: str) -> list[TradeRow]:
        return [_row(r) for r in queries.order_fills(self._connect(), order_id)]


def _row(r: queries.TradeRow) -> TradeRow:
    return TradeRow(
        execution_id=r.execution_id,
        symbol=r.symbol,
        price=r.price,
        quantity=r.quantity,
        aggressor_side=r.aggressor_side,
        buy_order_id=r.buy_order_id,
        sell_order_id=r.sell_order_id,
        buy_account=r.buy_account,
        sell_account=r.sell_account,
        occurred_at=r.occurred_at,
        ledger_seq=r.ledger_seq,
    )
