"""EventBridge lifecycle events: versioned detail schemas shared by producers and consumers.

Every event's ``detail-type`` names its schema and version (``trade.executed.v1``); a consumer
parses with :func:`parse_detail`, which rejects unknown types and versions instead of guessing.
Prices are decimals in the instrument's currency; ids are strings so they survive JSON unchanged.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meridian.domain import CancelReason
from meridian.executions import order_id_for

if TYPE_CHECKING:  # annotations only: consumers of the events need not load the wire protocol
    from meridian.protocol import CancelAck

EVENT_SOURCE = "meridian.trading"
# Trades have their own source: only the executions function (the drop copy's reader) may put it
# on the bus (its role's events:source condition and the bus policy), and the ledger's rule accepts
# trade.executed.v1 from it alone, so no other publisher can forge a trade into the ledger.
EXECUTIONS_SOURCE = "meridian.executions"
BUS_NAME_ENV = "EVENT_BUS_NAME"

SideName = Literal["BUY", "SELL"]


class UnknownEventError(ValueError):
    """An event whose detail-type or schema version this code does not know."""


class EventDetail(BaseModel):
    """Base of every lifecycle event detail."""

    # Built on first use, not at import: a consumer builds the schemas of the events it reads only.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    detail_type: ClassVar[str]
    source: ClassVar[str] = EVENT_SOURCE

    schema_version: int = Field(default=1, ge=1)
    event_id: str = Field(min_length=1, max_length=128, description="Idempotency key of the event")
    occurred_at: datetime


class OrderAccepted(EventDetail):
    detail_type: ClassVar[str] = "order.accepted.v1"
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: SideName
    order_type: Literal["LIMIT", "MARKET", "STOP", "STOP_LIMIT"]
    time_in_force: Literal["GTC", "IOC", "FOK", "DAY"]
    quantity: int = Field(gt=0)
    price: Decimal | None = None
    stop_price: Decimal | None = Field(default=None, description="STOP and STOP_LIMIT orders' trigger price")
    status: str
    node_seq: int = Field(ge=0)


class OrderRejected(EventDetail):
    detail_type: ClassVar[str] = "order.rejected.v1"
    client_order_id: str
    account: str
    symbol: str
    reason: str
    message: str = ""


class OrderCancelled(EventDetail):
    detail_type: ClassVar[str] = "order.cancelled.v1"
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    cancelled_quantity: int = Field(ge=0)
    reason: str = Field(description="The CancelReason: USER, IOC_REMAINDER, FOK_UNFILLED, SELF_TRADE, ...")
    node_seq: int = Field(ge=0)


class OrderReplaced(EventDetail):
    detail_type: ClassVar[str] = "order.replaced.v1"
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    quantity: int = Field(gt=0)
    price: Decimal | None = None
    node_seq: int = Field(ge=0)


class OrderPendingApproval(EventDetail):
    detail_type: ClassVar[str] = "order.pending_approval.v1"
    client_order_id: str
    account: str
    symbol: str
    side: SideName
    quantity: int = Field(gt=0)
    price: Decimal | None = None
    notional: Decimal
    reason: str


class TradeExecuted(EventDetail):
    """One trade with both sides; ``execution_id`` is unique across the fleet."""

    detail_type: ClassVar[str] = "trade.executed.v1"
    source: ClassVar[str] = EXECUTIONS_SOURCE
    execution_id: str
    symbol: str
    price: Decimal = Field(gt=0)
    quantity: int = Field(gt=0)
    aggressor_side: SideName
    buy_order_id: str
    sell_order_id: str
    buy_account: str
    sell_account: str
    buy_client_order_id: str
    sell_client_order_id: str
    node_seq: int = Field(ge=0)


class TradingHalted(EventDetail):
    detail_type: ClassVar[str] = "trading.halted.v1"
    symbol: str | None = Field(default=None, description="None means every symbol")
    halted: bool
    actor: str
    reason: str = ""


EVENT_TYPES: dict[str, type[EventDetail]] = {
    cls.detail_type: cls
    for cls in (
        OrderAccepted,
        OrderRejected,
        OrderCancelled,
        OrderReplaced,
        OrderPendingApproval,
        TradeExecuted,
        TradingHalted,
    )
}


def order_cancelled(cancel: CancelAck, occurred_at: datetime) -> OrderCancelled:
    """The lifecycle event of one cancel the matching node reported, the order's own or a resting
    order self-trade prevention removed."""
    order_id = order_id_for(cancel.account, cancel.client_order_id)
    return OrderCancelled(
        event_id=f"{order_id}:cancelled:{cancel.seq}",
        occurred_at=occurred_at,
        order_id=order_id,
        client_order_id=cancel.client_order_id,
        account=cancel.account,
        symbol=cancel.symbol,
        cancelled_quantity=cancel.cancelled_quantity,
        reason=CancelReason(cancel.reason).name,
        node_seq=cancel.seq,
    )


def put_events_entry(detail: EventDetail, bus_name: str, trace_header: str | None = None) -> dict[str, Any]:
    """The PutEvents entry for ``detail`` on ``bus_name``."""
    entry: dict[str, Any] = {
        "Source": detail.source,
        "DetailType": detail.detail_type,
        "Detail": detail.model_dump_json(),
        "EventBusName": bus_name,
    }
    if trace_header:
        entry["TraceHeader"] = trace_header
    return entry


def parse_detail(detail_type: str, detail: dict[str, Any] | str) -> EventDetail:
    """Validate an event detail against the schema its detail-type names.

    Raises UnknownEventError for an unknown detail-type and pydantic's ValidationError for a
    detail that does not match its schema.
    """
    cls = EVENT_TYPES.get(detail_type)
    if cls is None:
        raise UnknownEventError(f"unknown detail-type {detail_type!r}")
    if isinstance(detail, str):
        return cls.model_validate_json(detail)
    return cls.model_validate(detail)


def parse_eventbridge_event(event: dict[str, Any] | str) -> EventDetail:
    """Parse a whole EventBridge event (as delivered to SQS or a Lambda) into its detail model."""
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as exc:
            raise UnknownEventError(f"event is not JSON: {exc}") from None
    if not isinstance(event, dict) or "detail-type" not in event or "detail" not in event:
        raise UnknownEventError("not an EventBridge event (no detail-type/detail)")
    return parse_detail(str(event["detail-type"]), event["detail"])


__all__ = [
    "BUS_NAME_ENV",
    "EVENT_SOURCE",
    "EVENT_TYPES",
    "EXECUTIONS_SOURCE",
    "EventDetail",
    "OrderAccepted",
    "OrderCancelled",
    "OrderPendingApproval",
    "OrderRejected",
    "OrderReplaced",
    "TradeExecuted",
    "TradingHalted",
    "UnknownEventError",
    "ValidationError",
    "order_cancelled",
    "parse_detail",
    "parse_eventbridge_event",
    "put_events_entry",
]
