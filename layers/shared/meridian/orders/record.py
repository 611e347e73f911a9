"""The order as both entry paths store it: one Orders-table item per order, prices in integer ticks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from meridian.domain import Instrument
from meridian.exposure import Exposure, of_order

SideName = Literal["BUY", "SELL"]
OrderTypeName = Literal["LIMIT", "MARKET", "STOP", "STOP_LIMIT"]
TimeInForceName = Literal["GTC", "IOC", "FOK", "DAY"]
OrderStatusName = Literal[
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELLED",
    "REJECTED",
    "PENDING_APPROVAL",
    "EXPIRED",
    "UNCONFIRMED",
    "PENDING_TRIGGER",
]
CancelReasonName = Literal[
    "USER", "IOC_REMAINDER", "FOK_UNFILLED", "SELF_TRADE", "END_OF_DAY", "NO_LIQUIDITY", "HALT"
]

Liquidity = Literal["MAKER", "TAKER"]

OPEN_STATUSES: frozenset[str] = frozenset(
    {"NEW", "PARTIALLY_FILLED", "PENDING_APPROVAL", "UNCONFIRMED", "PENDING_TRIGGER"}
)
LIVE_ON_NODE: frozenset[str] = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_TRIGGER"})
STOP_TYPES: frozenset[str] = frozenset({"STOP", "STOP_LIMIT"})


def utc_now() -> datetime:
    return datetime.now(UTC)


# A compliance officer's decision on a held order, as stored with it and shown by the API (no
# docstring: it would become the published contract's description of the schema).
class Approval(BaseModel):
    # Built on first use, not at import (a cold start builds only what its route needs).
    model_config = ConfigDict(defer_build=True)

    decision: Literal["APPROVE", "REJECT"]
    actor: str
    comment: str = ""
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class OrderFill:
    """A fill of the order in the answer that made it (the ledger keeps them all)."""

    execution_id: str
    price: str  # decimal text on the instrument's grid
    quantity: int
    liquidity: Liquidity


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
    fills: tuple[OrderFill, ...] = ()  # those of the answer at hand; not stored
    cancel_reason: CancelReasonName | None = None
    stop_price_ticks: int | None = None
    filled_notional_ticks: int = 0  # sum of price (ticks) x quantity over the order's fills

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    def evolve(self, **changes: Any) -> OrderRecord:
        return replace(self, **changes)

    def valuation_ticks(self) -> int | None:
        """The price its exposure is valued at: its limit, or a market order's reference."""
        return self.price_ticks if self.price_ticks is not None else self.reference_ticks

    def exposure(self, instrument: Instrument) -> Exposure:
        """What this order contributes to its account's exposure (``meridian.exposure``)."""
        return of_order(
            self.side,
            self.symbol,
            open_quantity=self.leaves_quantity,
            filled=self.filled_quantity,
            is_open=self.is_open,
            price=instrument.to_price(self.valuation_ticks() or 0),
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

    def average_price(self, instrument: Instrument) -> str | None:
        if not self.filled_quantity or not self.filled_notional_ticks:
            return None
        average = instrument.to_price(self.filled_notional_ticks) / Decimal(self.filled_quantity)
        return instrument.average_text(average)
