"""The stored order (``meridian.orders.record``) rendered as the API's ``OrderOut``."""

from __future__ import annotations

from meridian.domain import Instrument
from meridian.orders.record import OrderRecord
from orders_api.models import FillOut, OrderOut


def order_out(record: OrderRecord, instrument: Instrument) -> OrderOut:
    def text(ticks: int | None) -> str | None:
        return None if ticks is None else instrument.price_text(instrument.to_price(ticks))

    return OrderOut(
        order_id=record.order_id,
        client_order_id=record.client_order_id,
        account=record.account,
        symbol=record.symbol,
        side=record.side,
        type=record.type,
        time_in_force=record.time_in_force,
        quantity=record.quantity,
        price=text(record.price_ticks),
        stop_price=text(record.stop_price_ticks),
        status=record.status,
        filled_quantity=record.filled_quantity,
        leaves_quantity=record.leaves_quantity,
        average_price=record.average_price(instrument),
        reject_reason=record.reject_reason,
        cancel_reason=record.cancel_reason,
        approval=record.approval,
        created_at=record.created_at,
        updated_at=record.updated_at,
        fills=[
            FillOut(execution_id=f.execution_id, price=f.price, quantity=f.quantity, liquidity=f.liquidity)
            for f in record.fills
        ],
    )
