"""Reads: one order, order lists, positions and trades (ledger), market data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meridian.domain import Instrument
from orders_api.auth import Action, Caller
from orders_api.dal.interfaces import InvalidPageTokenError, OrderQuery
from orders_api.errors import NotFoundError, UnprocessableError
from orders_api.logic.common import visible_order
from orders_api.models import (
    BookLevel,
    FillList,
    FillOut,
    LastTrade,
    MarketDataOut,
    OrderList,
    OrderOut,
    PositionList,
    PositionOut,
    TradeList,
    TradeOut,
)
from orders_api.records import order_out
from orders_api.services import Services

if TYPE_CHECKING:
    from meridian.ledger.queries import TradeRow


def _invalid_token() -> UnprocessableError:
    return UnprocessableError("INVALID_NEXT_TOKEN", "next_token was not issued for this query")


def _instrument(services: Services, symbol: str) -> Instrument:
    """The symbol's instrument; one no longer configured prints with two decimals."""
    return services.instruments.get(symbol) or Instrument(symbol)


def get_order(services: Services, caller: Caller, order_id: str) -> OrderOut:
    record = visible_order(services, caller, order_id)
    return order_out(record, services.instruments[record.symbol])


def order_fills(services: Services, caller: Caller, order_id: str) -> FillList:
    """Every fill of one order, as the ledger recorded them (from the drop copy: a fill the node
    made reaches it within moments, whichever request's answer it was in)."""
    record = visible_order(services, caller, order_id)
    instrument = _instrument(services, record.symbol)
    fills = [
        FillOut(
            execution_id=r.execution_id,
            price=instrument.price_text(r.price),
            quantity=r.quantity,
            liquidity="TAKER" if r.aggressor_side == record.side else "MAKER",
            occurred_at=r.occurred_at,
        )
        for r in services.ledger.order_fills(order_id)
    ]
    return FillList(order_id=order_id, fills=fills)


def list_orders(
    services: Services,
    caller: Caller,
    *,
    status: str | None,
    symbol: str | None,
    account: str | None,
    limit: int,
    next_token: str | None,
) -> OrderList:
    caller.require(Action.READ_ORDERS)
    query = OrderQuery(caller.account_scope(account), status, symbol, limit, next_token)
    try:
        page = services.orders.list(query)
    except InvalidPageTokenError:
        raise _invalid_token() from None
    orders = [
        order_out(r, services.instruments[r.symbol]) for r in page.records if r.symbol in services.instruments
    ]
    return OrderList(orders=orders, next_token=page.next_token)


def list_positions(
    services: Services, caller: Caller, account: str | None, symbol: str | None
) -> PositionList:
    caller.require(Action.READ_PORTFOLIO)
    rows = services.ledger.positions(caller.account_scope(account), symbol)
    return PositionList(
        positions=[
            PositionOut(
                account=r.account,
                symbol=r.symbol,
                quantity=r.quantity,
                average_price=_instrument(services, r.symbol).average_text(r.average_price),
                realized_pnl=_instrument(services, r.symbol).price_text(r.realized_pnl),
                updated_at=r.updated_at,
            )
            for r in rows
        ]
    )


def list_trades(
    services: Services,
    caller: Caller,
    *,
    account: str | None,
    symbol: str | None,
    limit: int,
    next_token: str | None,
) -> TradeList:
    caller.require(Action.READ_PORTFOLIO)
    try:
        page = services.ledger.trades(caller.account_scope(account), symbol, limit, next_token)
    except InvalidPageTokenError:
        raise _invalid_token() from None
    trades = [_trade_out(caller, r, _instrument(services, r.symbol)) for r in page.rows]
    return TradeList(trades=trades, next_token=page.next_token)


def _trade_out(caller: Caller, r: TradeRow, instrument: Instrument) -> TradeOut:
    """A trade as ``caller`` may see it: a trader sees their own side, never who was on the other."""
    buy_visible, sell_visible = caller.owns(r.buy_account), caller.owns(r.sell_account)
    return TradeOut(
        execution_id=r.execution_id,
        symbol=r.symbol,
        price=instrument.price_text(r.price),
        quantity=r.quantity,
        buy_account=r.buy_account if buy_visible else None,
        sell_account=r.sell_account if sell_visible else None,
        buy_order_id=r.buy_order_id if buy_visible else None,
        sell_order_id=r.sell_order_id if sell_visible else None,
        aggressor_side="BUY" if r.aggressor_side == "BUY" else "SELL",
        occurred_at=r.occurred_at,
    )


def market_data(services: Services, caller: Caller, symbol: str, trades: int) -> MarketDataOut:
    caller.require(Action.READ_MARKET_DATA)
    if symbol not in services.instruments:
        raise NotFoundError("UNKNOWN_SYMBOL", f"{symbol} is not traded here")
    instrument = services.instruments[symbol]
    text = instrument.price_text
    book = services.market_data.book(symbol)
    tape = services.market_data.last_trades(symbol, trades) if trades else []
    last = [
        LastTrade(
            price=text(t.price),
            quantity=t.quantity,
            execution_id=t.execution_id,
            occurred_at=t.occurred_at,
        )
        for t in tape
    ]
    if book is None:
        return MarketDataOut(symbol=symbol, last_trades=last)
    return MarketDataOut(
        symbol=symbol,
        bid_price=None if book.bid_price is None else text(book.bid_price),
        bid_quantity=book.bid_quantity,
        ask_price=None if book.ask_price is None else text(book.ask_price),
        ask_quantity=book.ask_quantity,
        bids=[BookLevel(price=text(p), quantity=q) for p, q in book.bids],
        asks=[BookLevel(price=text(p), quantity=q) for p, q in book.asks],
        last_trades=last,
        node_seq=book.node_seq,
        book_seq=book.book_seq,
        updated_at=book.updated_at,
    )
