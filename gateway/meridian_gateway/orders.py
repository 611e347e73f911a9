"""Lifecycle events from the trading bus -> order updates, each addressed to one account.

The bus carries ``order.*`` events (one account each) and ``trade.executed.v1`` (both sides of a
trade: one fill for the buyer's order, one for the seller's). A fill carries its own price and
quantity and the order's cumulative quantity and average fill price, summed here per order from
the fills this gateway has seen (a gateway that started after an order's first fills averages
over the fills since; ``GET /orders/{id}`` has the whole history). Nothing else of a trade reaches
either side: the counterparty's account and order are never in a message.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

from meridian.events import (
    EventDetail,
    OrderAccepted,
    OrderCancelled,
    OrderPendingApproval,
    OrderRejected,
    OrderReplaced,
    TradeExecuted,
)

MAX_TRACKED_ORDERS = 200_000
Addressed = tuple[str, dict[str, Any]]  # (account, message)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _base(event: str, account: str, order_id: str | None, detail: Any) -> dict[str, Any]:
    return {
        "type": "order",
        "channel": "orders",
        "event": event,
        "account": account,
        "order_id": order_id,
        "client_order_id": detail.client_order_id,
        "symbol": detail.symbol,
        "occurred_at": detail.occurred_at.isoformat(),
    }


class OrderUpdates:
    def __init__(self, max_tracked: int = MAX_TRACKED_ORDERS) -> None:
        self._fills: OrderedDict[str, tuple[int, Decimal]] = OrderedDict()  # order id -> (qty, notional)
        self._max = max_tracked
        self._seen: OrderedDict[str, None] = OrderedDict()  # event ids: the bus delivers at least once

    def messages(self, detail: EventDetail) -> list[Addressed]:
        if detail.event_id in self._seen:
            return []
        self._remember(self._seen, detail.event_id, None)
        if isinstance(detail, TradeExecuted):
            return [self._fill(detail, "BUY"), self._fill(detail, "SELL")]
        if isinstance(detail, OrderAccepted):
            message = _base("accepted", detail.account, detail.order_id, detail)
            message |= {"side": detail.side, "quantity": detail.quantity, "price": _text(detail.price)}
            return [(detail.account, message | {"node_seq": detail.node_seq})]
        if isinstance(detail, OrderCancelled):
            message = _base("cancelled", detail.account, detail.order_id, detail)
            message |= {
                "quantity": detail.cancelled_quantity,
                "reason": detail.reason,
                "node_seq": detail.node_seq,
            }
            return [(detail.account, message)]
        if isinstance(detail, OrderRejected):
            message = _base("rejected", detail.account, None, detail)
            return [(detail.account, message | {"reason": detail.reason, "message": detail.message})]
        if isinstance(detail, OrderReplaced):
            message = _base("replaced", detail.account, detail.order_id, detail)
            message |= {
                "quantity": detail.quantity,
                "price": _text(detail.price),
                "node_seq": detail.node_seq,
            }
            return [(detail.account, message)]
        if isinstance(detail, OrderPendingApproval):
            message = _base("pending_approval", detail.account, None, detail)
            message |= {"side": detail.side, "quantity": detail.quantity, "price": _text(detail.price)}
            return [(detail.account, message | {"reason": detail.reason})]
        return []  # trading.halted and future events: not an order's

    def _fill(self, trade: TradeExecuted, side: str) -> Addressed:
        buy = side == "BUY"
        account = trade.buy_account if buy else trade.sell_account
        order_id = trade.buy_order_id if buy else trade.sell_order_id
        quantity, notional = self._fills.get(order_id, (0, Decimal(0)))
        quantity += trade.quantity
        notional += trade.price * trade.quantity
        self._remember(self._fills, order_id, (quantity, notional))
        average = (notional / quantity).quantize(Decimal("0.000001")).normalize()
        message = {
            "type": "order",
            "channel": "orders",
            "event": "fill",
            "account": account,
            "order_id": order_id,
            "client_order_id": trade.buy_client_order_id if buy else trade.sell_client_order_id,
            "symbol": trade.symbol,
            "side": side,
            "quantity": trade.quantity,
            "price": _text(trade.price),
            "cumulative_quantity": quantity,
            "average_price": format(average, "f"),
            "execution_id": trade.execution_id,
            "occurred_at": trade.occurred_at.isoformat(),
            "node_seq": trade.node_seq,
        }
        return account, message

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > self._max:
            table.popitem(last=False)
