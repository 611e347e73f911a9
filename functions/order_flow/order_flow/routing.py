"""Route an approved order to its matching node and say what the answer means.

The order, its wire request and what the node's answer means for it are the order API's own
(``meridian.orders``); this step turns the answer into three things the state machine writes with
service integrations: the order's new state with its account's exposure change (one
TransactWriteItems: ``record_items``), the resting orders of other requests that the answer touched,
each with its account's exposure (``meridian.resting_orders``, one transaction each), and the
lifecycle events for the bus (in PutEvents batches of ten). The exposure the order API reserved
when it held the order (``meridian.exposure``) becomes what its answer left open.

The route publishes the order's lifecycle events but no ``trade.executed``: the node's drop copy is
the one source of those (``functions/executions``); ``trades`` counts the fills.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from meridian import exposure
from meridian.client import HotpathClient
from meridian.events import put_events_entry
from meridian.orders.answers import Outcome, interpret, resting_changes, stored_orders_wanted
from meridian.orders.items import routed_update
from meridian.orders.record import OrderRecord
from meridian.orders.requests import new_order
from meridian.protocol import Message
from meridian.resting_orders import transact_items

from .intake import INSTRUMENTS, held_record
from .models import FlowOrder, RecordUpdate

StoredOrders = Callable[[Sequence[str]], Mapping[str, OrderRecord]]

PUT_EVENTS_BATCH = 10


class NodeRejectedError(RuntimeError):
    """The matching node refused the order; ``reason`` is its RejectReason name."""

    def __init__(self, reason: str, seq: int) -> None:
        super().__init__(f"the matching node rejected the order: {reason} (seq {seq})")
        self.reason = reason


def interpret_answer(order: FlowOrder, node: str, messages: Sequence[Message], at: datetime) -> Outcome:
    """The node's answer applied to the held order; NodeRejectedError if the node refused it."""
    held = held_record(order, at).evolve(node=node)
    outcome = interpret(held, messages, INSTRUMENTS[order.symbol], at, node)
    if outcome.rejected is not None:
        raise NodeRejectedError(outcome.rejected.name, outcome.record.last_seq)
    return outcome


def record_items(
    order: FlowOrder, record: OrderRecord, orders_table: str, exposure_table: str
) -> list[dict[str, Any]]:
    """The TransactWriteItems entries that store the node's answer: the order (only if it still
    awaits it) and the change of its account's exposure from what was reserved when it was held."""
    items: list[dict[str, Any]] = [{"Update": routed_update(orders_table, record)}]
    instrument = INSTRUMENTS[order.symbol]
    change = record.exposure(instrument) - held_record(order, record.updated_at).exposure(instrument)
    if not change.is_zero:
        items.append({"Update": exposure.update(exposure_table, order.account, change)})
    return items


def route_order(
    order: FlowOrder,
    client: HotpathClient,
    bus_name: str,
    at: datetime,
    tables: tuple[str, str],
    stored_orders: StoredOrders,
) -> dict[str, Any]:
    """Send the order (the client re-sends a lost NewOrder once; the node answers a repeat as a duplicate).

    ``tables``: the Orders and Exposure tables; ``stored_orders`` reads the stored orders that the
    resting-order changes are completed from (self-trade cancels, stop orders that fired).
    """
    orders_table, exposure_table = tables
    node = f"{client.address[0]}:{client.address[1]}"
    answer = client.exchange(new_order(held_record(order, at)))
    outcome = interpret_answer(order, node, answer.messages, at)
    wanted = stored_orders_wanted(outcome)
    changes = resting_changes(outcome, stored_orders(wanted) if wanted else {}, INSTRUMENTS)
    entries = [put_events_entry(event, bus_name) for event in outcome.events]
    return {
        "rejected": False,
        "reason": "",
        "message": "",
        "record": RecordUpdate.of(outcome.record).model_dump(),
        "record_items": record_items(order, outcome.record, orders_table, exposure_table),
        "counterparties": [
            {"items": transact_items(orders_table, exposure_table, change)} for change in changes
        ],
        "event_batches": [
            entries[i : i + PUT_EVENTS_BATCH] for i in range(0, len(entries), PUT_EVENTS_BATCH)
        ],
        "duplicate": answer.duplicate,
        "trades": outcome.trades,
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
