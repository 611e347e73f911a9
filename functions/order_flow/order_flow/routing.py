"""Route an approved order to its matching node and say what the answer means.

The answer becomes three things the state machine writes with service integrations: the order's
new state with its account's exposure change (one TransactWriteItems: ``record_items``), the
resting orders of other requests that the answer touched, each with its account's exposure
(``meridian.resting_orders``, one transaction each), and the lifecycle events for the bus (in
PutEvents batches of ten). The exposure the order reserved when the order API held it
(``meridian.exposure``) becomes what its answer left open.

Ids are the shared ones (``meridian.executions``), so both entry paths produce the same records
and events. The route publishes the order's lifecycle events but no ``trade.executed``: the node's
drop copy is the one source of those (``functions/executions``); ``trades`` counts the fills.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from meridian import exposure
from meridian.client import HotpathClient
from meridian.domain import CancelReason, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from meridian.events import (
    EventDetail,
    OrderAccepted,
    order_cancelled,
    put_events_entry,
)
from meridian.executions import order_id_for
from meridian.exposure import Exposure
from meridian.protocol import Ack, CancelAck, Fill, Message, NewOrder, Reject
from meridian.resting_orders import RestingChange, merge, transact_items

from .intake import INSTRUMENTS, held_exposure
from .models import FlowOrder, RecordUpdate

StoredLookup = Callable[[str], Mapping[str, Any] | None]

PUT_EVENTS_BATCH = 10
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})


class NodeRejectedError(RuntimeError):
    """The matching node refused the order; ``reason`` is its RejectReason name."""

    def __init__(self, reason: str, seq: int) -> None:
        super().__init__(f"the matching node rejected the order: {reason} (seq {seq})")
        self.reason = reason


def new_order(order: FlowOrder) -> NewOrder:
    return NewOrder(
        0,
        order.client_order_id,
        order.account,
        order.symbol,
        int(Side[order.side]),
        int(OrderType[order.type]),
        int(TimeInForce[order.time_in_force]),
        order.order_flags,
        order.quantity,
        order.price_ticks or 0,
    )


@dataclass(frozen=True, slots=True)
class SelfTradeCancel:
    order_id: str
    account: str
    seq: int
    cancelled_quantity: int
    reason: str = "SELF_TRADE"  # the CancelReason name


class _Interpretation:
    def __init__(self, order: FlowOrder, node: str, at: datetime) -> None:
        self.order, self.node, self.at = order, node, at
        instrument = INSTRUMENTS[order.symbol]
        self.to_price = instrument.to_price
        self.record = RecordUpdate(
            status="NEW",
            node=node,
            node_order_id=0,
            filled_quantity=0,
            leaves_quantity=order.quantity,
            last_seq=0,
            price_ticks=order.price_ticks,
            open=True,
        )
        self.quantity = order.quantity
        self.resting: list[RestingChange] = []
        self.fired: set[str] = set()  # other requests' stop orders that fired in this answer (order ids)
        self.acked = False
        self.self_trade: list[SelfTradeCancel] = []
        self.events: list[EventDetail] = []
        self.trades = 0

    def _update(self, **changes: Any) -> None:
        self.record = self.record.model_copy(update=changes)

    def ack(self, ack: Ack) -> None:
        if self.acked and ack.order_id != self.record.node_order_id:
            self._fired(ack)  # any Ack after the first is a stop order firing (engine/reference.py)
            return
        first, self.acked = not self.acked, True
        status = OrderStatus(ack.status).name
        price = self.order.price_ticks if self.order.type == "MARKET" else ack.price
        self.quantity = ack.quantity
        self._update(
            status=status,
            node_order_id=ack.order_id,
            filled_quantity=ack.filled_quantity,
            leaves_quantity=ack.leaves_quantity,
            last_seq=ack.seq,
            price_ticks=price,
        )
        if not first:
            return
        o = self.order
        self.events.append(
            OrderAccepted(
                event_id=f"{o.order_id}:accepted",
                occurred_at=self.at,
                order_id=o.order_id,
                client_order_id=o.client_order_id,
                account=o.account,
                symbol=o.symbol,
                side=o.side,
                order_type=o.type,
                time_in_force=o.time_in_force,
                quantity=o.quantity,
                price=None if price is None else self.to_price(price),
                status=status,
                node_seq=ack.seq,
            )
        )

    def _fired(self, ack: Ack) -> None:
        order_id = order_id_for(ack.account, ack.client_order_id)
        self.fired.add(order_id)
        self.resting.append(
            RestingChange(
                order_id=order_id,
                account=ack.account,
                side="BUY" if ack.side == 1 else "SELL",
                symbol=ack.symbol,
                price=self.to_price(ack.price),  # completed from the stored order (resting_changes)
                seq=ack.seq,
                leaves_before=ack.leaves_quantity,
                leaves_after=ack.leaves_quantity,
                triggered=True,
            )
        )

    def fill(self, fill: Fill) -> None:
        self.trades += 1
        buy = ("BUY", fill.buy_order_id, fill.buy_leaves_quantity, fill.buy_account, fill.buy_client_order_id)
        sell = (
            "SELL",
            fill.sell_order_id,
            fill.sell_leaves_quantity,
            fill.sell_account,
            fill.sell_client_order_id,
        )
        for side, node_order_id, leaves, account, client_order_id in (buy, sell):
            if node_order_id == self.record.node_order_id:
                filled = self.quantity - leaves  # the node's figures, not a running sum
                self._update(leaves_quantity=leaves, filled_quantity=filled, last_seq=fill.seq)
            else:
                self.resting.append(
                    RestingChange(
                        order_id=order_id_for(account, client_order_id),
                        account=account,
                        side="BUY" if side == "BUY" else "SELL",
                        symbol=fill.symbol,
                        price=self.to_price(fill.price),
                        seq=fill.seq,
                        leaves_before=leaves + fill.quantity,
                        leaves_after=leaves,
                        notional_ticks=fill.price * fill.quantity,
                    )
                )

    def cancel(self, cancel: CancelAck) -> None:
        order_id = order_id_for(cancel.account, cancel.client_order_id)
        if cancel.order_id == self.record.node_order_id:
            filled = max(self.quantity - cancel.cancelled_quantity, 0)
            self._update(status="CANCELLED", leaves_quantity=0, filled_quantity=filled, last_seq=cancel.seq)
        else:  # a resting order removed by self-trade prevention
            reason = CancelReason(cancel.reason).name
            cancelled = SelfTradeCancel(
                order_id, cancel.account, cancel.seq, cancel.cancelled_quantity, reason
            )
            self.self_trade.append(cancelled)
        self.events.append(order_cancelled(cancel, self.at))

    def settle(self) -> None:
        r = self.record
        status = r.status
        if status not in ("CANCELLED", "REJECTED"):
            status = (
                "FILLED"
                if r.leaves_quantity == 0 and r.filled_quantity > 0
                else "PARTIALLY_FILLED"
                if r.filled_quantity
                else "NEW"
            )
        self._update(status=status, open=status in OPEN)


def interpret(order: FlowOrder, node: str, messages: list[Message], at: datetime) -> _Interpretation:
    result = _Interpretation(order, node, at)
    for message in messages:
        if isinstance(message, Reject):
            raise NodeRejectedError(RejectReason(message.reason).name, message.seq)
        if isinstance(message, Ack):
            result.ack(message)
        elif isinstance(message, Fill):
            result.fill(message)
        elif isinstance(message, CancelAck):
            result.cancel(message)
    result.settle()
    return result


_RECORD = (
    "SET #s = :status, node = :node, node_order_id = :node_order_id, filled_quantity = :filled, "
    "leaves_quantity = :leaves, last_seq = :seq, updated_at = :updated_at"
)


def record_items(
    order: FlowOrder, record: RecordUpdate, at: datetime, orders_table: str, exposure_table: str
) -> list[dict[str, Any]]:
    """The TransactWriteItems entries that store the node's answer: the order (only if it still
    awaits it) and the change of its account's exposure from what was reserved when it was held."""
    values = {
        ":status": {"S": record.status},
        ":node": {"S": record.node},
        ":node_order_id": {"N": str(record.node_order_id)},
        ":filled": {"N": str(record.filled_quantity)},
        ":leaves": {"N": str(record.leaves_quantity)},
        ":seq": {"N": str(record.last_seq)},
        ":updated_at": {"S": at.isoformat()},
        ":pending": {"S": "PENDING_APPROVAL"},
    }
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": orders_table,
                "Key": {"order_id": {"S": order.order_id}},
                "UpdateExpression": _RECORD,
                "ConditionExpression": "#s = :pending",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values,
            }
        }
    ]
    change = answered_exposure(order, record) - held_exposure(order)
    if not change.is_zero:
        items.append({"Update": exposure.update(exposure_table, order.account, change)})
    return items


def answered_exposure(order: FlowOrder, record: RecordUpdate) -> Exposure:
    instrument = INSTRUMENTS[order.symbol]
    ticks = record.price_ticks if record.price_ticks is not None else order.reference_ticks
    return exposure.of_order(
        order.side,
        order.symbol,
        open_quantity=record.leaves_quantity,
        filled=record.filled_quantity,
        is_open=record.open,
        price=instrument.to_price(ticks or 0),
    )


def resting_changes(result: _Interpretation, lookup: StoredLookup) -> list[RestingChange]:
    """The fills of resting orders, and the self-trade cancels completed from the stored orders (a
    cancel does not carry the order's side and price), one change per order (``merge``); the
    changes of stop orders that fired are valued at the stored order's price, as its exposure was
    reserved; an order the table does not hold is skipped."""
    changes: list[RestingChange] = []
    for change in result.resting:
        if change.order_id not in result.fired:
            changes.append(change)
            continue
        stored = lookup(change.order_id)
        if not stored or stored.get("symbol") not in INSTRUMENTS:
            continue
        ticks = stored.get("price_ticks", stored.get("reference_ticks"))
        if ticks is None:
            continue
        changes.append(replace(change, price=INSTRUMENTS[str(stored["symbol"])].to_price(int(ticks))))
    for cancel in result.self_trade:
        stored = lookup(cancel.order_id)
        if not stored or stored.get("price_ticks") is None or stored.get("symbol") not in INSTRUMENTS:
            continue
        symbol = str(stored["symbol"])
        changes.append(
            RestingChange(
                order_id=cancel.order_id,
                account=cancel.account,
                side="BUY" if stored.get("side") == "BUY" else "SELL",
                symbol=symbol,
                price=INSTRUMENTS[symbol].to_price(int(stored["price_ticks"])),
                seq=cancel.seq,
                leaves_before=cancel.cancelled_quantity,
                leaves_after=0,
                cancelled=True,
                reason=cancel.reason,
            )
        )
    return merge(changes)


def route_order(
    order: FlowOrder,
    client: HotpathClient,
    bus_name: str,
    at: datetime,
    tables: tuple[str, str],
    lookup: StoredLookup,
) -> dict[str, Any]:
    """Send the order (the client re-sends a lost NewOrder once; the node answers a repeat as a duplicate).

    ``tables``: the Orders and Exposure tables; ``lookup`` reads a stored order (self-trade cancels).
    """
    orders_table, exposure_table = tables
    node = f"{client.address[0]}:{client.address[1]}"
    answer = client.exchange(new_order(order))
    result = interpret(order, node, answer.messages, at)
    entries = [put_events_entry(event, bus_name) for event in result.events]
    return {
        "rejected": False,
        "reason": "",
        "message": "",
        "record": result.record.model_dump(),
        "record_items": record_items(order, result.record, at, orders_table, exposure_table),
        "counterparties": [
            {"items": transact_items(orders_table, exposure_table, change)}
            for change in resting_changes(result, lookup)
        ],
        "event_batches": [
            entries[i : i + PUT_EVENTS_BATCH] for i in range(0, len(entries), PUT_EVENTS_BATCH)
        ],
        "duplicate": answer.duplicate,
        "trades": result.trades,
    }


def rejected_answer(exc: NodeRejectedError) -> dict[str, Any]:
    """The step's answer when the node refused the order: same shape, nothing to write but the reject."""
    return {
        "rejected": True,
        "reason": exc.reason,
        "message": str(exc),
        "record": None,
        "record_items": [],
        "counterparties": [],
        "event_batches": [],
        "duplicate": False,
        "trades": 0,
    }
