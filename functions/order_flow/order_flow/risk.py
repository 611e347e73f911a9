"""Risk at approval time: the order's notional, the hard cap, and why it needs a compliance decision.

The order API decided to hold the order; this step re-checks the firm-wide hard limit (which no
approval can lift) and states the reasons the compliance officer sees in the notice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from meridian.domain import Instrument

from .intake import INSTRUMENTS
from .models import FlowOrder, RiskAssessment


class RiskLimitBreachedError(RuntimeError):
    """A limit no approval can lift; ``reason`` is a RejectReason name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def held_for(start_input: Any) -> str:
    """Why the order API held the order (the pending-approval event's ``reason``), if the input says."""
    detail = start_input.get("detail") if isinstance(start_input, Mapping) else None
    return str(detail.get("reason") or "") if isinstance(detail, Mapping) else ""


def notional(order: FlowOrder, instrument: Instrument) -> Decimal:
    """Quantity times the limit price (the reference price for a market order), in currency units."""
    ticks = order.price_ticks if order.type == "LIMIT" and order.price_ticks else instrument.reference_price
    return instrument.to_price(ticks) * order.quantity


def assess(
    order: FlowOrder,
    large_order_notional: Decimal,
    max_order_notional: Decimal,
    restricted: Iterable[str] = (),
    held_for: str = "",
    instruments: Mapping[str, Instrument] = INSTRUMENTS,
) -> RiskAssessment:
    instrument = instruments[order.symbol]
    value = notional(order, instrument)
    if value > max_order_notional:
        raise RiskLimitBreachedError(
            "MAX_NOTIONAL", f"notional {value} is above the firm's cap {max_order_notional}"
        )
    reasons: list[str] = []
    if value >= large_order_notional:
        reasons.append(f"LARGE_NOTIONAL: {value} >= {large_order_notional}")
    if order.symbol in set(restricted):
        reasons.append(f"RESTRICTED_SYMBOL: {order.symbol}")
    if held_for or not reasons:  # every order here waits for a decision; say why the API held it
        reasons.append(f"HELD_BY_ORDER_API: {held_for or 'approval required'}")
    return RiskAssessment(notional=value, reasons=reasons)
