"""The first step: which order this execution is about, loaded and checked against its instrument.

An execution starts either from the ``order.pending_approval.v1`` event (an EventBridge rule targets
the state machine) or directly with ``{"order_id": ...}``. Either way the order is read from the
order API's table, so the flow acts on what the API stored, never on a copy in the event. The step
also states how to give back the exposure the order API reserved for the held order
(``release``), which the flow writes with the order's REJECTED record if it never reaches a node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from meridian import exposure
from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.dynamo_items import from_item
from meridian.exposure import Exposure
from meridian.orders.items import HELD, item_to_record
from meridian.orders.record import OrderRecord

from .models import FlowOrder

PENDING_SUFFIX = ":pending_approval"
_UNDATED = datetime(1970, 1, 1, tzinfo=UTC)  # where no timestamp plays a part
INSTRUMENTS: dict[str, Instrument] = {i.symbol: i for i in DEFAULT_INSTRUMENTS}


class OrderInvalidError(ValueError):
    """The order cannot go to the matching node; ``reason`` is a RejectReason name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class OrderNotFoundError(LookupError):
    """The order the execution names is not in the order table."""


class OrderNotPendingError(RuntimeError):
    """The order is no longer awaiting approval (cancelled, already decided)."""


class OrderReader(Protocol):
    def get(self, order_id: str) -> Mapping[str, Any] | None: ...


def order_id_of(start_input: Mapping[str, Any]) -> str:
    """The order id from a direct start input or an ``order.pending_approval.v1`` event."""
    direct = start_input.get("order_id")
    if isinstance(direct, str) and direct:
        return direct
    detail = start_input.get("detail")
    if isinstance(detail, Mapping):
        if isinstance(detail.get("order_id"), str) and detail["order_id"]:
            return str(detail["order_id"])
        event_id = detail.get("event_id")
        # The order API names this event "<order id>:pending_approval".
        if isinstance(event_id, str) and event_id.endswith(PENDING_SUFFIX):
            return event_id.removesuffix(PENDING_SUFFIX)
    raise OrderInvalidError(
        "INVALID_ORDER", "the input names no order (order_id, or a pending-approval event)"
    )


def check_instrument_rules(order: FlowOrder, instruments: Mapping[str, Instrument] = INSTRUMENTS) -> None:
    instrument = instruments.get(order.symbol)
    if instrument is None:
        raise OrderInvalidError("UNKNOWN_SYMBOL", f"{order.symbol} is not traded")
    if order.quantity % instrument.lot_size:
        raise OrderInvalidError(
            "LOT_SIZE", f"quantity {order.quantity} is not a multiple of {instrument.lot_size}"
        )
    if order.quantity > instrument.max_order_quantity:
        raise OrderInvalidError(
            "INVALID_QUANTITY", f"quantity {order.quantity} is above the instrument's maximum"
        )
    if order.type == "LIMIT":
        if not order.price_ticks:
            raise OrderInvalidError("INVALID_PRICE", "a limit order needs a price")
        if order.price_ticks % instrument.tick_size:
            raise OrderInvalidError(
                "TICK_SIZE", f"price {order.price_ticks} is off the {instrument.tick_size} grid"
            )
        low, high = instrument.band(instrument.reference_price)
        if not low <= order.price_ticks <= high:
            raise OrderInvalidError("PRICE_BAND", f"price {order.price_ticks} is outside [{low}, {high}]")


def load_pending(start_input: Mapping[str, Any], orders: OrderReader) -> FlowOrder:
    """The order the execution is about, as stored; it must still await approval."""
    order_id = order_id_of(start_input)
    stored = orders.get(order_id)
    if stored is None:
        raise OrderNotFoundError(f"order {order_id} is not in the order table")
    order = FlowOrder.model_validate(dict(stored))
    if order.status != "PENDING_APPROVAL":
        raise OrderNotPendingError(f"order {order_id} is {order.status}, not PENDING_APPROVAL")
    return order


def held_record(order: FlowOrder, at: datetime) -> OrderRecord:
    """The held order as the order API stored it, before the node's answer (``at``: now)."""
    try:
        created = datetime.fromisoformat(order.created_at) if order.created_at else at
    except ValueError:
        created = at
    return OrderRecord(
        order_id=order.order_id,
        account=order.account,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        time_in_force=order.time_in_force,
        quantity=order.quantity,
        price_ticks=order.price_ticks,
        status=HELD,
        created_at=created,
        updated_at=at,
        order_flags=order.order_flags,
        leaves_quantity=order.quantity,
        submitted_by=order.submitted_by,
        reference_ticks=order.reference_ticks,
    )


def held_exposure(order: FlowOrder) -> Exposure:
    """What the held order reserved (the order API reserves an order's exposure when it creates it)."""
    return held_record(order, _UNDATED).exposure(INSTRUMENTS[order.symbol])


def release(order: FlowOrder, exposure_table: str) -> dict[str, Any]:
    """The TransactWriteItems entry that gives the held order's exposure back."""
    held = held_exposure(order) if order.symbol in INSTRUMENTS else Exposure()  # unknown: never reserved
    return {"Update": exposure.update(exposure_table, order.account, -held)}


def intake(start_input: Mapping[str, Any], orders: OrderReader, exposure_table: str) -> dict[str, Any]:
    """The step's answer: the order, whether it can be routed (a reason when it cannot), and how
    to give its exposure back."""
    order = load_pending(start_input, orders)
    answer = {"order": order.model_dump(), "release": release(order, exposure_table)}
    try:
        check_instrument_rules(order)
    except OrderInvalidError as exc:
        return {**answer, "valid": False, "reason": exc.reason, "message": str(exc)}
    return {**answer, "valid": True, "reason": "", "message": ""}


class DynamoOrderReader:
    """The order API's Orders table (key ``order_id``)."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def get(self, order_id: str) -> Mapping[str, Any] | None:
        answer = self._db.get_item(
            TableName=self._table, Key={"order_id": {"S": order_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if not item:
            return None
        values = from_item(item)
        return {k: int(v) if k in _INTEGER_FIELDS and v is not None else v for k, v in values.items()}

    def records(self, order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        """The stored orders among ``order_ids`` (an id the table does not hold is left out)."""
        found: dict[str, OrderRecord] = {}
        for order_id in order_ids:
            answer = self._db.get_item(
                TableName=self._table, Key={"order_id": {"S": order_id}}, ConsistentRead=True
            )
            if item := answer.get("Item"):
                found[order_id] = item_to_record(item)
        return found


_INTEGER_FIELDS = frozenset(
    {"quantity", "price_ticks", "order_flags", "filled_quantity", "leaves_quantity", "reference_ticks"}
)
