"""The wire request that sends an order to its matching node (a stop order waits there for its trigger)."""

from __future__ import annotations

from meridian.domain import OrderType, Side, TimeInForce
from meridian.orders.record import OrderRecord
from meridian.protocol import NewOrder, NewStopOrder


def new_order(record: OrderRecord) -> NewOrder | NewStopOrder:
    """The order's NewOrder (a NewStopOrder for a stop order, which works as MARKET or LIMIT once
    triggered); the node answers a repeat of it, by client order id, as a duplicate."""
    working_type = OrderType.MARKET if record.type in ("MARKET", "STOP") else OrderType.LIMIT
    fields = (
        0,
        record.client_order_id,
        record.account,
        record.symbol,
        int(Side[record.side]),
        int(working_type),
        int(TimeInForce[record.time_in_force]),
        record.order_flags,
        record.quantity,
        record.price_ticks or 0,
    )
    if record.is_stop:
        return NewStopOrder(*fields, record.stop_price_ticks or 0)
    return NewOrder(*fields)
