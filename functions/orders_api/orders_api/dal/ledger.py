"""Positions and trades from the post-trade ledger in PostgreSQL, through the ledger's own read
queries (``meridian.ledger.queries``) on the container's shared connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meridian.ledger import queries
from meridian.ledger.queries import PositionRow, TradeRow
from orders_api.dal.interfaces import InvalidPageTokenError, TradePageRows

Connect = Callable[[], Any]


class PostgresLedgerReader:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    def positions(self, account: str | None, symbol: str | None = None) -> list[PositionRow]:
        rows = queries.positions(self._connect(), account)
        return [r for r in rows if symbol is None or r.symbol == symbol]

    def position(self, account: str, symbol: str) -> int:
        return next((row.quantity for row in self.positions(account, symbol)), 0)

    def trades(
        self, account: str | None, symbol: str | None, limit: int, cursor: str | None
    ) -> TradePageRows:
        try:
            page = queries.trades(self._connect(), account, symbol, limit, cursor)
        except queries.InvalidCursorError:
            raise InvalidPageTokenError("next_token is not one this API issued") from None
        return TradePageRows(page.items, page.next_cursor)

    def order_fills(self, order_id: str) -> list[TradeRow]:
        return queries.order_fills(self._connect(), order_id)
