"""Helpers shared by the order logic: instruments, prices, visibility, recording node outcomes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from meridian.domain import Instrument, RejectReason
from meridian.exposure import Exposure
from meridian.orders.answers import Outcome, resting_changes, stored_orders_wanted
from meridian.orders.record import OrderRecord
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.dal.interfaces import OrderWrite, Recording
from orders_api.errors import NotFoundError, OrderRefusedError, ServiceUnavailableError
from orders_api.models import ErrorDetail
from orders_api.services import Services


def instrument_for(services: Services, symbol: str) -> Instrument:
    instrument = services.instruments.get(symbol)
    if instrument is None:
        raise OrderRefusedError(
            RejectReason.UNKNOWN_SYMBOL, f"{symbol} is not traded here", [_field("symbol")]
        )
    return instrument


def _field(name: str, rule: str = "invalid", msg: str = "") -> ErrorDetail:
    return ErrorDetail(loc=["body", name], type=rule, msg=msg)


def price_ticks(instrument: Instrument, price: str, name: str = "price") -> int:
    """A decimal price string as integer ticks; off the instrument's grid -> TICK_SIZE (422)."""
    try:
        ticks = instrument.to_ticks(Decimal(price))
    except (ValueError, InvalidOperation):
        grid = instrument.to_price(instrument.tick_size)
        raise OrderRefusedError(
            RejectReason.TICK_SIZE, f"{name} {price} is not on the {grid} grid", [_field(name, "tick_size")]
        ) from None
    if ticks <= 0:
        raise OrderRefusedError(RejectReason.INVALID_PRICE, f"{name} must be positive", [_field(name)])
    if ticks % instrument.tick_size:
        grid = instrument.to_price(instrument.tick_size)
        raise OrderRefusedError(
            RejectReason.TICK_SIZE,
            f"{name} {price} is not a multiple of {grid}",
            [_field(name, "tick_size")],
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
            "the matching node's answer was lost or unreadable, so the order may be live; repeat the"
            " request with the same key (its client order id) to learn the outcome",
            retry,
        )
    return ServiceUnavailableError(
        "MATCHING_UNAVAILABLE", "the matching node cannot be reached; nothing was done", retry
    )


def record_outcome(
    services: Services,
    base: OrderRecord,
    outcome: Outcome,
    rederive: Callable[[OrderRecord], Outcome] | None = None,
    answer: str | None = None,
    reserved: Exposure | None = None,
) -> tuple[bool, OrderRecord]:
    """Announce what the node answered, then store it; (whether this answer's state of the order was
    written, the order as stored afterwards).

    The events go first, in one PutEvents: the order they are about is stored already (it was
    created before it was sent), and if this function stops between the two, the order's stored
    state stays behind (UNCONFIRMED for a new order, which its retry resolves and announces again
    under the same event ids) rather than an event being lost. Then one transaction stores the
    order (only if its stored state is still ``base``), the resting orders the answer touched and
    the exposure of every account involved. If ``base`` changed meanwhile, ``rederive`` works the
    answer out again from the stored state; without it the stored state stands. ``reserved``: the
    exposure reserved for this change before the node acted, given back as the answer is recorded.
    """
    services.events.publish(outcome.events)
    wanted = stored_orders_wanted(outcome)
    stored = services.orders.get_many(wanted) if wanted else {}
    others = resting_changes(outcome, stored, services.instruments)
    write = OrderWrite(base, outcome.record, answer)
    for _ in range(3):
        recorded = services.orders.record(Recording(write, others, reserved or Exposure()))
        if recorded.written:
            return True, write.new
        current = recorded.current
        if current is None or rederive is None or current.last_seq >= write.new.last_seq:
            break
        write = OrderWrite(current, rederive(current).record, answer)
    if reserved is not None and not reserved.is_zero:
        services.orders.release(base.account, reserved)
    services.orders.record(Recording(None, others))  # the resting orders, whatever the order's fate
    return False, recorded.current or write.new
