"""Route an approved order to its matching node and say what the answer means.

The answer becomes three things the state machine writes with service integrations: the order's
new state (DynamoDB attribute values for the Orders table), the resting orders of other requests
that the fills touched, and the lifecycle events for the bus (in PutEvents batches of ten).

Ids are the shared ones (``meridian.executions``), so both entry paths produce the same records
and events. The route publishes the order's lifecycle events but no ``trade.executed``: the node's
drop copy is the one source of those (``functions/executions``); ``trades`` counts the fills.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meridian.client import HotpathClient
from meridian.domain import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from meridian.events import (
    EventDetail,
    OrderAccepted,
    order_cancelled,
    put_events_entry,
)
from meridian.executions import order_id_for
from meridian.protocol import Ack, CancelAck, Fill, Message, NewOrder, Reject

from .intake import INSTRUMENTS
from .models import CounterpartyUpdate, FlowOrder, RecordUpdate

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
        self.counterparties: list[CounterpartyUpdate] = []
        self.events: list[EventDetail] = []
        self.trades = 0

    def _update(self, **changes: Any) -> None:
        self.record = self.record.model_copy(update=changes)

    def ack(self, ack: Ack) -> None:
        status = OrderStatus(ack.status).name
        price = self.order.price_ticks if self.order.type == "MARKET" else ack.price
        self._update(
            status=status,
            node_order_id=ack.order_id,
            filled_quantity=ack.filled_quantity,
            leaves_quantity=ack.leaves_quantity,
            last_seq=ack.seq,
            price_ticks=price,
        )
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

    def fill(self, fill: Fill) -> None:
        self.trades += 1
        for node_order_id, leaves, account, client_order_id in (
            (fill.buy_order_id, fill.buy_leaves_quantity, fill.buy_account, fill.buy_client_order_id),
            (fill.sell_order_id, fill.sell_leaves_quantity, fill.sell_account, fill.sell_client_order_id),
        ):
            if node_order_id == self.record.node_order_id:
                self._update(
                    leaves_quantity=leaves,
                    filled_quantity=self.record.filled_quantity + fill.quantity,
                    last_seq=fill.seq,
                )
            else:
                status = "FILLED" if leaves == 0 else "PARTIALLY_FILLED"
                order_id = order_id_for(account, client_order_id)
                self.counterparties.append(
                    CounterpartyUpdate(order_id=order_id, leaves_quantity=leaves, seq=fill.seq, status=status)
                )

    def cancel(self, cancel: CancelAck) -> None:
        order_id = order_id_for(cancel.account, cancel.client_order_id)
        if cancel.order_id == self.record.node_order_id:
            self._update(status="CANCELLED", leaves_quantity=0, last_seq=cancel.seq)
        else:  # a resting order removed by self-trade prevention
            self.counterparties.append(
                CounterpartyUpdate(order_id=order_id, leaves_quantity=0, seq=cancel.seq, status="CANCELLED")
            )
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


def record_values(order: FlowOrder, record: RecordUpdate, at: datetime) -> dict[str, Any]:
    """ExpressionAttributeValues for the Orders table update the state machine makes (an open order
    stays in the account's open-order index, so only then is ``:account`` used)."""
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
    if record.open:
        values[":account"] = {"S": order.account}
    return values


_COUNTERPARTY_EXPRESSIONS = {
    "FILLED": "SET leaves_quantity = :leaves, filled_quantity = quantity, #s = :status, last_seq = :seq "
    "REMOVE open_account",
    "CANCELLED": "SET leaves_quantity = :leaves, #s = :status, last_seq = :seq REMOVE open_account",
    "PARTIALLY_FILLED": "SET leaves_quantity = :leaves, filled_quantity = quantity - :leaves, #s = :status, "
    "last_seq = :seq",
}
# Only an open order of this API, and only with an older answer than this one (as the API writes it).
COUNTERPARTY_CONDITION = "attribute_exists(order_id) AND last_seq < :seq AND #s IN (:new, :partially)"


def counterparty_write(update: CounterpartyUpdate) -> dict[str, Any]:
    """One Orders-table update for the state machine's Map state to apply."""
    return {
        "key": {"order_id": {"S": update.order_id}},
        "expression": _COUNTERPARTY_EXPRESSIONS[update.status],
        "values": {
            ":leaves": {"N": str(update.leaves_quantity)},
            ":seq": {"N": str(update.seq)},
            ":status": {"S": update.status},
            ":new": {"S": "NEW"},
            ":partially": {"S": "PARTIALLY_FILLED"},
        },
    }


def route_order(order: FlowOrder, client: HotpathClient, bus_name: str, at: datetime) -> dict[str, Any]:
    """Send the order (the client re-sends a lost NewOrder once; the node answers a repeat as a duplicate)."""
    node = f"{client.address[0]}:{client.address[1]}"
    answer = client.exchange(new_order(order))
    result = interpret(order, node, answer.messages, at)
    entries = [put_events_entry(event, bus_name) for event in result.events]
    return {
        "rejected": False,
        "reason": "",
        "message": "",
        "record": result.record.model_dump(),
        "record_values": record_values(order, result.record, at),
        "counterparties": [counterparty_write(c) for c in result.counterparties],
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
        "record_values": None,
        "counterparties": [],
        "event_batches": [],
        "duplicate": False,
        "trades": 0,
    }
