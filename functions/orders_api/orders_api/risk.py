"""Pre-trade risk: plain functions over plain values, run before an order leaves the Lambda.

``check`` raises ``OrderRefusedError`` with the reason (MAX_ORDER_QUANTITY, MAX_NOTIONAL,
TRADING_HALTED, RESTRICTED_SYMBOL, PRICE_BAND) or returns whether the order must first be approved
by compliance (large notional, or a symbol restricted for approval). The limits on what an account
holds open (open orders, positions with open orders, open notional) are not checked here: the
order's exposure is reserved against them atomically when the order is created
(``meridian.exposure``), and ``exposure_refused`` words a refusal. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from meridian.domain import Instrument, RejectReason
from meridian.exposure import Breach
from meridian.orders.record import SideName
from orders_api.dal.interfaces import RiskLimits, TradingControl
from orders_api.errors import OrderRefusedError


@dataclass(frozen=True, slots=True)
class OrderIntent:
    account: str
    symbol: str
    side: SideName
    quantity: int
    price_ticks: int | None  # None for a market order


@dataclass(frozen=True, slots=True)
class RiskInputs:
    limits: RiskLimits
    last_trade_ticks: int | None
    global_control: TradingControl
    symbol_control: TradingControl
    large_order_notional: Decimal


class Route(Enum):
    MATCHING = "matching"
    APPROVAL = "approval"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    route: Route
    notional: Decimal
    reason: str = ""


def reference_ticks(instrument: Instrument, last_trade_ticks: int | None) -> int:
    """The price the band and a market order's notional are measured from."""
    return last_trade_ticks if last_trade_ticks else instrument.reference_price


def notional(instrument: Instrument, intent: OrderIntent, reference: int) -> Decimal:
    ticks = intent.price_ticks if intent.price_ticks is not None else reference
    return instrument.to_price(ticks) * intent.quantity


def _reject(reason: RejectReason, message: str) -> OrderRefusedError:
    return OrderRefusedError(reason, message)


def check(intent: OrderIntent, instrument: Instrument, inputs: RiskInputs) -> RiskDecision:
    if inputs.global_control.halted or inputs.symbol_control.halted:
        scope = "all trading" if inputs.global_control.halted else f"trading in {intent.symbol}"
        raise _reject(RejectReason.TRADING_HALTED, f"{scope} is halted")
    if inputs.symbol_control.restricted:
        raise _reject(RejectReason.RESTRICTED_SYMBOL, f"{intent.symbol} is restricted")
    limits = inputs.limits
    if intent.quantity > limits.max_order_quantity:
        raise _reject(
            RejectReason.MAX_ORDER_QUANTITY,
            f"quantity {intent.quantity} exceeds the account's limit of {limits.max_order_quantity}",
        )
    reference = reference_ticks(instrument, inputs.last_trade_ticks)
    value = notional(instrument, intent, reference)
    if value > limits.max_notional:
        raise _reject(
            RejectReason.MAX_NOTIONAL, f"notional {value} exceeds the limit of {limits.max_notional}"
        )
    if intent.price_ticks is not None:
        low, high = instrument.band(reference)
        if not low <= intent.price_ticks <= high:
            band = f"{instrument.to_price(low)}-{instrument.to_price(high)}"
            raise _reject(RejectReason.PRICE_BAND, f"price is outside the band {band}")
    if inputs.symbol_control.approval_required:
        return RiskDecision(Route.APPROVAL, value, f"{intent.symbol} needs compliance approval")
    if value > inputs.large_order_notional:
        return RiskDecision(Route.APPROVAL, value, f"notional above {inputs.large_order_notional}")
    return RiskDecision(Route.MATCHING, value)


_EXPOSURE_REASONS: dict[Breach, RejectReason] = {
    "MAX_OPEN_ORDERS": RejectReason.MAX_OPEN_ORDERS,
    "MAX_NOTIONAL": RejectReason.MAX_NOTIONAL,
    "POSITION_LIMIT": RejectReason.POSITION_LIMIT,
}


def exposure_refused(breach: Breach, message: str) -> OrderRefusedError:
    """The refusal of an order whose exposure reservation would pass one of the account's limits
    (``breach`` is never NOT_SEEDED here: the caller seeds the account and tries again)."""
    return _reject(_EXPOSURE_REASONS[breach], message)
