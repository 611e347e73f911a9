"""Lifecycle events and Lambda batches for the post-trade pipeline tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meridian.events import OrderAccepted, OrderCancelled, TradeExecuted
from meridian_local.delivery.lambda_events import eventbridge_event

BASE_TIME = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
_ids = itertools.count(1)


def trade(
    execution_id: str | None = None,
    *,
    symbol: str = "AAPL",
    price: str | Decimal = "190.25",
    quantity: int = 10,
    buyer: str = "ACC-BUY",
    seller: str = "ACC-SELL",
    node_seq: int | None = None,
    at: datetime | None = None,
) -> TradeExecuted:
    n = next(_ids)
    return TradeExecuted(
        event_id=f"evt-{execution_id or n}",
        occurred_at=at or BASE_TIME + timedelta(milliseconds=n),
        execution_id=execution_id or f"exe-{n}",
        symbol=symbol,
        price=Decimal(price),
        quantity=quantity,
        aggressor_side="BUY",
        buy_order_id=f"ord-b{n}",
        sell_order_id=f"ord-s{n}",
        buy_account=buyer,
        sell_account=seller,
        buy_client_order_id=f"cb{n}",
        sell_client_order_id=f"cs{n}",
        node_seq=n if node_seq is None else node_seq,
    )


def accepted(account: str, *, symbol: str = "AAPL", at: datetime | None = None) -> OrderAccepted:
    n = next(_ids)
    return OrderAccepted(
        event_id=f"evt-acc-{n}",
        occurred_at=at or BASE_TIME + timedelta(milliseconds=n),
        order_id=f"ord-{n}",
        client_order_id=f"c{n}",
        account=account,
        symbol=symbol,
        side="BUY",
        order_type="LIMIT",
        time_in_force="GTC",
        quantity=10,
        price=Decimal("190.00"),
        status="NEW",
        node_seq=n,
    )


def cancelled(
    account: str, *, symbol: str = "AAPL", reason: str = "USER", at: datetime | None = None
) -> OrderCancelled:
    n = next(_ids)
    return OrderCancelled(
        event_id=f"evt-can-{n}",
        occurred_at=at or BASE_TIME + timedelta(milliseconds=n),
        order_id=f"ord-{n}",
        client_order_id=f"c{n}",
        account=account,
        symbol=symbol,
        cancelled_quantity=10,
        reason=reason,
        node_seq=n,
    )


def envelope(detail: TradeExecuted | OrderAccepted | OrderCancelled) -> dict[str, Any]:
    return eventbridge_event(detail)
