"""The order as the API stores it, and its rendering as an ``OrderOut``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meridian.domain import Instrument
from meridian.exposure import Exposure, of_order
from orders_api.models import (
    Approval,
    CancelReasonName,
    FillOut,
    OrderOut,
    OrderStatusName,
    OrderTypeName,
    SideName,
    TimeInForceName,
)

OPEN_STATUSES: frozenset[str] = frozenset(
    {"NEW", "PARTIALLY_FILLED", "PENDING_APPROVAL", "UNCONFIRMED", "PENDING_TRIGGER"}
)
LIVE_ON_NODE: frozenset[str] = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_TRIGGER"})
STOP_TYPES: frozenset[str] = frozenset({"STOP", "STOP_LIMIT"})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    account: str
    client_order_id: str
    symbol: str
    side: SideName
    type: OrderTypeName
    time_in_force: TimeInForceName
    quantity: int
    price_ticks: int | None
    status: OrderStatusName
    created_at: datetime
    updated_at: datetime
    order_flags: int = 0
    filled_quantity: int = 0
    leaves_quantity: int = 0
    node: str | None = None
    node_order_id: int | None = None
    last_seq: int = 0
    reject_reason: str | None = None
    approval: Approval | None = None
    submitted_by: str = ""
    reference_ticks: int | None = None  # a market order's notional is valued at this price
    fills: tuple[FillOut, ...] = field(default=())
    cancel_reason: CancelReasonName | None = None
    stop_price_ticks: int | None = None
    filled_notional_ticks: int = 0  # sum of price (ticks) x quantity over the order's fills

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def evolve(self, **changes: Any) -> OrderRecord:
        return replace(self, **changes)

    def exposure(self, instrument: Instrument) -> Exposure:
        """What this order contributes to its account's exposure (``meridian.exposure``)."""
        ticks = self.price_ticks if self.price_ticks is not None else self.reference_ticks
        return of_order(
            self.side,
            self.symbol,
            open_quantity=self.leaves_quantity,
            filled=self.filled_quantity,
            is_open=self.is_open,
            price=instrument.to_price(ticks or 0),
        )

    def same_order_as(self, other: OrderRecord) -> bool:
        """Whether two submissions with one client order id ask for the same order."""
        keys = (
            "symbol",
            "side",
            "type",
            "time_in_force",
            "quantity",
            "price_ticks",
            "stop_price_ticks",
            "order_flags",
        )
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    def average_price(self, instrument: Instrument) -> str | None:
        if not self.filled_quantity or not self.filled_notional_ticks:
            return None
        average = instrument.to_price(self.filled_notional_ticks) / Decimal(self.filled_quantity)
        return instrument.average_text(average)

    def to_out(self, instrument: Instrument) -> OrderOut:
        price = (
            None if self.price_ticks is None else instrument.price_text(instrument.to_price(self.price_ticks))
        )
        stop = self.stop_price_ticks
        stop_price = None if stop is None else instrument.price_text(instrument.to_price(stop))
        return OrderOut(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            account=self.account,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            time_in_force=self.time_in_force,
            quantity=self.quantity,
            price=price,
            stop_price=stop_price,
            status=self.status,
            filled_quantity=self.filled_quantity,
            leaves_quantity=self.leaves_quantity,
            average_price=self.average_price(instrument),
            reject_reason=self.reject_reason,
            cancel_reason=self.cancel_reason,
            approval=self.approval,
            created_at=self.created_at,
            updated_at=self.updated_at,
            fills=list(self.fills),
        )
