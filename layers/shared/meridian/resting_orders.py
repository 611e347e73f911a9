"""The writes that record what a node's answer did to resting orders of other requests.

A fill or a self-trade cancel in one request's answer changes an order that another request
placed. Its Orders-table item and its account's exposure change together, in one transaction,
and only if the stored order is exactly the state the answer changed: still open, older than the
answer (``last_seq``) and with the open quantity the answer started from. So each fill and each
cancel is counted once, an older answer never overwrites a newer one, and the account's exposure
stays the sum of its stored orders (``meridian.exposure``). A write whose condition fails is
skipped, never guessed: the order is not one of the API's, it is already closed, or another
answer got there first. Used by the order API and by the order flow, so both write the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meridian import exposure
from meridian.exposure import Exposure, SideName

_STATE = "#s = :status, last_seq = :seq"
_FILL = {
    True: f"SET leaves_quantity = :leaves, filled_quantity = quantity, {_STATE}",
    False: f"SET leaves_quantity = :leaves, filled_quantity = quantity - :leaves, {_STATE}",
}
_CANCEL = f"SET leaves_quantity = :leaves, {_STATE}"
CONDITION = (
    "attribute_exists(order_id) AND last_seq < :seq AND #s IN (:new, :partially) "
    "AND leaves_quantity = :before"
)


@dataclass(frozen=True, slots=True)
class RestingChange:
    """A fill (``filled`` > 0) or a cancel of a resting order, as one answer reported it."""

    order_id: str
    account: str
    side: SideName
    symbol: str
    price: Decimal  # the order's limit price (a fill's price is the resting order's)
    seq: int
    leaves_before: int
    leaves_after: int
    cancelled: bool = False

    @property
    def status(self) -> str:
        if self.cancelled:
            return "CANCELLED"
        return "FILLED" if self.leaves_after == 0 else "PARTIALLY_FILLED"

    @property
    def exposure(self) -> Exposure:
        if self.cancelled:
            return exposure.of_cancel(self.side, self.symbol, self.leaves_before, self.price)
        quantity = self.leaves_before - self.leaves_after
        return exposure.of_fill(self.side, self.symbol, quantity, self.leaves_after, self.price)


def order_update(orders_table: str, change: RestingChange) -> dict[str, Any]:
    """The ``Update`` of the resting order's item (a TransactWriteItems entry's body)."""
    expression = _CANCEL if change.cancelled else _FILL[change.leaves_after == 0]
    return {
        "TableName": orders_table,
        "Key": {"order_id": {"S": change.order_id}},
        "UpdateExpression": expression,
        "ConditionExpression": CONDITION,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":leaves": {"N": str(0 if change.cancelled else change.leaves_after)},
            ":before": {"N": str(change.leaves_before)},
            ":seq": {"N": str(change.seq)},
            ":status": {"S": change.status},
            ":new": {"S": "NEW"},
            ":partially": {"S": "PARTIALLY_FILLED"},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def transact_items(orders_table: str, exposure_table: str, change: RestingChange) -> list[dict[str, Any]]:
    """The two entries of the transaction that records ``change``: the order and its account."""
    return [
        {"Update": order_update(orders_table, change)},
        {"Update": exposure.update(exposure_table, change.account, change.exposure)},
    ]
