"""Positions and trades (from the ledger) and market data (from the MarketData table)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from orders_api import logic
from orders_api.models import MarketDataOut, PositionList, SymbolName, TradeList
from orders_api.routes.common import caller, errors, new_router, ok, svc

router = new_router()

Account = Annotated[str | None, Query(min_length=1, max_length=16, description="Officers only")]
SymbolFilter = Annotated[SymbolName | None, Query()]


@router.get(
    "/positions",
    summary="Positions per account and symbol",
    tags=["portfolio"],
    responses={**ok(200, PositionList, "Positions"), **errors()},
)
def get_positions(account: Account = None, symbol: SymbolFilter = None) -> PositionList:
    return logic.queries.list_positions(svc(), caller(router), account, symbol)


@router.get(
    "/trades",
    summary="Executed trades, newest first",
    tags=["portfolio"],
    responses={**ok(200, TradeList, "A page of trades"), **errors()},
)
def get_trades(
    account: Account = None,
    symbol: SymbolFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    next_token: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> TradeList:
    return logic.queries.list_trades(
        svc(), caller(router), account=account, symbol=symbol, limit=limit, next_token=next_token
    )


@router.get(
    "/marketdata/<symbol>",
    summary="Top of book, depth and the latest trades",
    tags=["market data"],
    responses={**ok(200, MarketDataOut, "Market data"), **errors(404)},
)
def get_market_data(
    symbol: Annotated[str, Path(min_length=1, max_length=8)],
    trades: Annotated[int, Query(ge=0, le=100, description="How many recent trades")] = 20,
) -> MarketDataOut:
    return logic.queries.market_data(svc(), caller(router), symbol, trades)
