"""The writes that record what a node's answer did to resting orders of other requests.

A fill or a self-trade cancel in one request's answer changes an order that another request
placed. Its Orders-table item and its account's exposure change together, in one transaction,
and only if the stored order is exactly the state the answer changed: still open, older than the
answer (``last_seq``) and with the open quantity the answer started from. So each fill and each
cancel is counted once, an older answer never overwrites a newer one, and the account's exposure
stays the sum of its stored orders (``meridian.exposure``). A write whose condition fails is
skipped, never guessed: the order is not one of the API's, it is already closed, or another
answer got there first. Used by the order API and by the order flow, so both write the same way.
A change also records a cancel's reason, the fill's price x quantity (for the order's average price)
and a stop order firing (PENDING_TRIGGER -> NEW).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from meridian import exposure
from meridian.exposure import Exposure, SideName

_SET = (
    "SET leaves_quantity = :leaves, filled_quantity = if_not_exists(filled_quantity, :zero) + :filled, "
    "filled_notional_ticks = if_not_exists(filled_notional_ticks, :zero) + :notional, #s = :status, "
    "last_seq = :seq"
)
CONDITION = (
    "attribute_exists(order_id) AND last_seq < :seq AND #s IN (:new, :partially, :pending_trigger) "
    "AND leaves_quantity = :before"
)


@dataclass(frozen=True, slots=True)
class RestingChange:
    """A fill (``filled`` > 0), a cancel, or the firing of a stop order, of an order another request
    placed, as one answer reported it. ``parts``: the changes one answer made to the same order,
    merged into one write (``merge``), whose exposure is theirs summed."""

    order_id: str
    account: str
    side: SideName
    symbol: str
    price: Decimal  # the order's limit price (a fill's price is the resting order's)
    seq: int
    leaves_before: int
    leaves_after: int
    cancelled: bool = False
    reason: str | None = None  # a cancel's CancelReason name
    notional_ticks: int = 0  # price (ticks) x quantity of the fill
    triggered: bool = False  # a stop order that fired (PENDING_TRIGGER -> working)
    parts: tuple[RestingChange, ...] = ()

    @property
    def filled(self) -> int:
        if self.parts:
            return sum(part.filled for part in self.parts)
        if self.cancelled or self.triggered:
            return 0
        return self.leaves_before - self.leaves_after

    @property
    def status(self) -> str:
        if self.cancelled:
            return "CANCELLED"
        if self.leaves_after == 0:
            return "FILLED"
        return "PARTIALLY_FILLED" if self.filled else "NEW"

    @property
    def exposure(self) -> Exposure:
        if self.parts:
            total = Exposure()
            for part in self.parts:
                total = total + part.exposure
            return total
        if self.triggered:
            return Exposure()
        if self.cancelled:
            return exposure.of_cancel(self.side, self.symbol, self.leaves_before, self.price)
        return exposure.of_fill(self.side, self.symbol, self.filled, self.leaves_after, self.price)


def merge(changes: list[RestingChange]) -> list[RestingChange]:
    """One change per order, in the order each first appears: a transaction writes an item once, and
    the changes of one answer share its seq (a stop firing inside an answer may trade with an order
    that the request's own order traded with already)."""
    groups: dict[str, list[RestingChange]] = {}
    for change in changes:
        groups.setdefault(change.order_id, []).append(change)
    merged: list[RestingChange] = []
    for group in groups.values():
        first, last = group[0], group[-1]
        if len(group) == 1:
            merged.append(first)
            continue
        merged.append(
            replace(
                first,
                leaves_after=last.leaves_after,
                cancelled=last.cancelled,
                reason=last.reason,
                notional_ticks=sum(c.notional_ticks for c in group),
                triggered=any(c.triggered for c in group),
                parts=tuple(group),
            )
        )
    return merged


def order_update(orders_table: str, change: RestingChange) -> dict[str, Any]:
    """The ``Update`` of the resting order's item (a TransactWriteItems entry's body)."""
    expression = _SET
    values = {
        ":leaves": {"N": str(0 if change.cancelled else change.leaves_after)},
        ":filled": {"N": str(change.filled)},
        ":notional": {"N": str(change.notional_ticks)},
        ":zero": {"N": "0"},
        ":before": {"N": str(change.leaves_before)},
        ":seq": {"N": str(change.seq)},
        ":status": {"S": change.status},
        ":new": {"S": "NEW"},
        ":partially": {"S": "PARTIALLY_FILLED"},
        ":pending_trigger": {"S": "PENDING_TRIGGER"},
    }
    if change.cancelled and change.reason:
        expression += ", cancel_reason = :reason"
        values[":reason"] = {"S": change.reason}
    return {
        "TableName": orders_table,
        "Key": {"order_id": {"S": change.order_id}},
        "UpdateExpression": expression,
        "ConditionExpression": CONDITION,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def transact_items(orders_table: str, exposure_table: str, change: RestingChange) -> list[dict[str, Any]]:
    """The two entries of the transaction that records ``change``: the order and its account."""
    return [
        {"Update": order_update(orders_table, change)},
        {"Update": exposure.update(exposure_table, change.account, change.exposure)},
    ]
