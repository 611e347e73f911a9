"""Helpers shared by the order logic: instruments, prices, visibility, recording node outcomes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from meridian.domain import Instrument, RejectReason
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.errors import NotFoundError, OrderRefusedError, ServiceUnavailableError
from orders_api.logic.answers import Outcome
from orders_api.models import ErrorDetail
from orders_api.records import OrderRecord
from orders_api.services import Services


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros ("190.5", "100")."""
    return format(value.normalize(), "f")


def instrument_for(services: Services, symbol: str) -> Instrument:
    instrument = services.instruments.get(symbol)
    if instrument is None:
        raise OrderRefusedError(
            RejectReason.UNKNOWN_SYMBOL, f"{symbol} is not traded here", [_field("symbol")]
        )
    return instrument


def _field(name: str, rule: str = "invalid", msg: str = "") -> ErrorDetail:
    return ErrorDetail(loc=["body", name], type=rule, msg=msg)


def price_ticks(instrument: Instrument, price: str) -> int:
    """A decimal price string as integer ticks; off the instrument's grid -> TICK_SIZE (422)."""
    try:
        ticks = instrument.to_ticks(Decimal(price))
    except (ValueError, InvalidOperation):
        grid = instrument.to_price(instrument.tick_size)
        raise OrderRefusedError(
            RejectReason.TICK_SIZE, f"price {price} is not on the {grid} grid", [_field("price", "tick_size")]
        ) from None
    if ticks <= 0:
        raise OrderRefusedError(RejectReason.INVALID_PRICE, "price must be positive", [_field("price")])
    if ticks % instrument.tick_size:
        grid = instrument.to_price(instrument.tick_size)
        raise OrderRefusedError(
            RejectReason.TICK_SIZE,
            f"price {price} is not a multiple of {grid}",
            [_field("price", "tick_size")],
        )
    return ticks


def check_quantity(instrument: Instrument, quantity: int) -> None:
    if quantity > instrument.max_order_quantity:
        raise OrderRefusedError(RejectReason.INVALID_QUANTITY, "quantity is above the instrument's maximum")
    if quantity % instrument.lot_size:
        raise OrderRefusedError(
            RejectReason.LOT_SIZE,
            f"quantity must be a multiple of {instrument.lot_size}",
            [_field("quantity", "lot_size")],
        )


def visible_order(services: Services, caller: Caller, order_id: str) -> OrderRecord:
    """The order, if the caller may see it; another account's order is reported as not found."""
    caller.require(Action.READ_ORDERS)
    record = services.orders.get(order_id)
    if record is None:
        raise NotFoundError("NOT_FOUND", "no such order")
    caller.check_visible(record.account)
    return record


def node_unavailable(
    services: Services, exc: NodeUnavailable | NodeOutcomeUnknown
) -> ServiceUnavailableError:
    retry = services.settings.retry_after_seconds
    if isinstance(exc, NodeOutcomeUnknown):
        return ServiceUnavailableError(
            "MATCHING_OUTCOME_UNKNOWN",
            "the matching node did not answer in time; repeat the request with the same key to learn"
            " the outcome",
            retry,
        )
    return ServiceUnavailableError(
        "MATCHING_UNAVAILABLE", "the matching node cannot be reached; nothing was done", retry
    )


def record_outcome(services: Services, outcome: Outcome) -> None:
    """Store what the node said (this order, the resting orders it touched), then announce it."""
    services.orders.save(outcome.record)
    if outcome.others:
        services.orders.apply_updates(outcome.others)
    services.events.publish(outcome.events)
