"""The order path's writes, each one DynamoDB transaction (all or nothing, one round trip).

``open``: the order's item (conditional on its id being new: the lookup of an earlier submission
is folded into the create, and a refused create returns the stored order), the reservation of its
exposure (conditional on the account's limits, ``meridian.exposure``) and, for an Idempotency-Key
that is not the order's own id, the key's item. ``record``: what a node answer changed, the order
(conditional on the stored state it was derived from) and the resting orders it touched
(``meridian.resting_orders``), with the exposure change of every account involved.

The exposure of an account is the sum of its stored orders' contributions, because every write
of an order changes its account's exposure by exactly the difference, in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from meridian import exposure
from meridian.aws_clients import error_code
from meridian.domain import Instrument
from meridian.dynamo_items import to_item
from meridian.exposure import Exposure
from meridian.orders.items import item_to_record, record_update
from meridian.orders.record import OrderRecord
from meridian.resting_orders import RestingChange, order_update
from orders_api.dal.interfaces import Opened, Opening, OrderWrite, Recorded, Recording
from orders_api.dal.order_items import item_to_stored, stored_to_item

MAX_ITEMS = 100  # per TransactWriteItems
CONFLICT_RETRIES = 6
_PINNED = "last_seq = :base_seq AND #s = :base_status"


class TransactionFailedError(RuntimeError):
    """A transaction kept conflicting with others, or failed for a reason no retry here fixes."""


def _code(reason: Mapping[str, Any]) -> str:
    return str(reason.get("Code") or "None")


def transact(
    db: Any, items: Sequence[Mapping[str, Any]], sleep: Any = time.sleep
) -> list[dict[str, Any]] | None:
    """Write ``items`` together. None when written; the cancellation reasons (one per item, with the
    stored item where a condition failed) when a condition refused it. Conflicts are retried."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            db.transact_write_items(TransactItems=list(items))
            return None
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            raw: Any = exc.response.get("CancellationReasons") or []
            reasons: list[dict[str, Any]] = [dict(r) for r in raw]
            codes = {_code(r) for r in reasons}
            if "ConditionalCheckFailed" in codes:
                return reasons
            if codes <= {"None", "TransactionConflict"} and "TransactionConflict" in codes:
                sleep(0.005 * 2**attempt)
                continue
            raise TransactionFailedError(f"transaction cancelled: {sorted(codes)}") from exc
    raise TransactionFailedError(f"transaction still conflicting after {CONFLICT_RETRIES} attempts")


def _failed(reasons: Sequence[Mapping[str, Any]], index: int) -> bool:
    return index < len(reasons) and _code(reasons[index]) == "ConditionalCheckFailed"


class DynamoOrderWrites:
    """The write half of ``DynamoOrderStore`` (which holds the client and the table names)."""

    _db: Any
    _table: str
    _exposure_table: str
    _keys_table: str
    _instruments: Mapping[str, Instrument]

    def _exposure_of(self, record: OrderRecord) -> Exposure:
        return record.exposure(self._instruments[record.symbol])

    # ---- open ----------------------------------------------------------------------------------

    def open(self, opening: Opening) -> Opened:
        record = opening.stored.record
        reservation = self._exposure_of(record)
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": stored_to_item(opening.stored),
                    "ConditionExpression": "attribute_not_exists(order_id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Update": exposure.update(self._exposure_table, record.account, reservation, opening.limits)},
        ]
        if opening.key is not None:
            item = {
                "id": opening.key.key_id,
                "order_id": record.order_id,
                "request_hash": opening.stored.request_hash,
                "expiration": opening.key.expires_at,
            }
            items.append(
                {
                    "Put": {
                        "TableName": self._keys_table,
                        "Item": to_item(item),
                        "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                        "ExpressionAttributeValues": to_item({":now": int(time.time())}),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        reasons = transact(self._db, items)
        if reasons is None:
            return Opened(created=True)
        existing = None
        if _failed(reasons, 0) and reasons[0].get("Item"):
            existing = item_to_stored(reasons[0]["Item"])
        key_order_id = key_hash = None
        if _failed(reasons, 2) and reasons[2].get("Item"):
            key_item = reasons[2]["Item"]
            key_order_id = key_item.get("order_id", {}).get("S")
            key_hash = key_item.get("request_hash", {}).get("S")
        breach = None
        if _failed(reasons, 1):
            breach = exposure.breach(reasons[1].get("Item"), reservation, opening.limits) or (
                "NOT_SEEDED",
                "the account's exposure changed while it was checked; retry",
            )
        return Opened(False, existing, key_order_id, key_hash, breach)

    def discard(self, opening: Opening) -> None:
        """Undo ``open``: the order never reached a node (nothing else changed it meanwhile)."""
        record = opening.stored.record
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": {"order_id": {"S": record.order_id}},
                    "ConditionExpression": _PINNED,
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": to_item(
                        {":base_seq": record.last_seq, ":base_status": record.status}
                    ),
                }
            },
            {"Update": exposure.update(self._exposure_table, record.account, -self._exposure_of(record))},
        ]
        if opening.key is not None:
            items.append(
                {"Delete": {"TableName": self._keys_table, "Key": {"id": {"S": opening.key.key_id}}}}
            )
        transact(self._db, items)  # a refusal: another request took the order over; it stays

    def reserve(
        self, account: str, delta: Exposure, limits: exposure.Limits
    ) -> tuple[exposure.Breach, str] | None:
        body = exposure.update(self._exposure_table, account, delta, limits)
        body.pop("ReturnValuesOnConditionCheckFailure", None)
        try:
            self._db.update_item(**body)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            found = self._db.get_item(
                TableName=self._exposure_table, Key={"account": {"S": account}}, ConsistentRead=True
            ).get("Item")  # the refusal path only: which limit
            return exposure.breach(found, delta, limits) or (
                "NOT_SEEDED",
                "the account's exposure changed; retry",
            )
        return None

    def release(self, account: str, delta: Exposure) -> None:
        if not delta.is_zero:
            self._db.update_item(**exposure.update(self._exposure_table, account, -delta))

    def claim(self, order_id: str, until: int, now: int) -> bool:
        condition = "#s = :unconfirmed"
        values: dict[str, Any] = {":until": until, ":unconfirmed": "UNCONFIRMED"}
        if until:
            condition += " AND (attribute_not_exists(in_progress_until) OR in_progress_until < :now)"
            values[":now"] = now
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"order_id": {"S": order_id}},
                UpdateExpression="SET in_progress_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def seed_exposure(self, account: str, positions: Mapping[str, int]) -> None:
        try:
            self._db.update_item(**exposure.seed(self._exposure_table, account, positions, datetime.now(UTC)))
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise  # seeded already (by a concurrent first order): fine

    # ---- record --------------------------------------------------------------------------------

    def record(self, recording: Recording) -> Recorded:
        others = list(recording.others)
        own = recording.order
        first = True
        while first or others:
            chunk, others = self._chunk(own if first else None, others)
            outcome = self._write_chunk(own if first else None, chunk, recording.reserved if first else None)
            if isinstance(outcome, Recorded):
                return outcome  # the order itself was refused: nothing was written
            first = False
        return Recorded(written=True)

    def _chunk(
        self, own: OrderWrite | None, others: list[RestingChange]
    ) -> tuple[list[RestingChange], list[RestingChange]]:
        """As many resting-order changes as fit one transaction beside the order and the accounts."""
        accounts = {own.new.account} if own is not None else set()
        used = 1 if own is not None else 0
        taken: list[RestingChange] = []
        for change in others:
            extra = 1 + (change.account not in accounts)
            if used + len(accounts) + extra > MAX_ITEMS:
                break
            taken.append(change)
            accounts.add(change.account)
            used += 1
        return taken, others[len(taken) :]

    def _write_chunk(
        self, own: OrderWrite | None, changes: list[RestingChange], reserved: Exposure | None
    ) -> Recorded | None:
        pending = list(changes)
        while True:
            items, deltas = self._items(own, pending)
            if own is not None and reserved is not None and not reserved.is_zero:
                account = own.new.account
                deltas[account] = deltas.get(account, Exposure()) - reserved
            for account, delta in sorted(deltas.items()):
                if not delta.is_zero:
                    items.append({"Update": exposure.update(self._exposure_table, account, delta)})
            if not items:
                return None
            reasons = transact(self._db, items)
            if reasons is None:
                return None
            offset = 0
            if own is not None:
                if _failed(reasons, 0):
                    stored = reasons[0].get("Item")
                    return Recorded(written=False, current=item_to_record(stored) if stored else None)
                offset = 1
            pending = [
                again
                for index, change in enumerate(pending)
                if (again := self._retry(change, reasons, offset + index)) is not None
            ]

    def _items(
        self, own: OrderWrite | None, changes: list[RestingChange]
    ) -> tuple[list[dict[str, Any]], dict[str, Exposure]]:
        items: list[dict[str, Any]] = []
        deltas: dict[str, Exposure] = {}
        if own is not None:
            expression, names, values = record_update(own.new, own.answer)
            values.update(to_item({":base_seq": own.base.last_seq, ":base_status": own.base.status}))
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"order_id": {"S": own.new.order_id}},
                        "UpdateExpression": expression,
                        "ConditionExpression": "last_seq = :base_seq AND #base_status = :base_status",
                        "ExpressionAttributeNames": {**names, "#base_status": "status"},
                        "ExpressionAttributeValues": values,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
            change = self._exposure_of(own.new) - self._exposure_of(own.base)
            deltas[own.new.account] = deltas.get(own.new.account, Exposure()) + change
        for resting in changes:
            items.append({"Update": order_update(self._table, resting)})
            deltas[resting.account] = deltas.get(resting.account, Exposure()) + resting.exposure
        return items, deltas

    def _retry(
        self, change: RestingChange, reasons: list[dict[str, Any]], index: int
    ) -> RestingChange | None:
        """A refused resting-order change, re-based on the stored order when the answer is newer."""
        if not _failed(reasons, index):
            return change
        stored = reasons[index].get("Item")
        if not stored:
            return None  # not an order of this API
        current = item_to_record(stored)
        if not current.is_open or current.status == "UNCONFIRMED" or current.last_seq >= change.seq:
            return None  # closed, unconfirmed (its own request records it) or a newer answer is stored
        if current.leaves_quantity < change.leaves_after:
            return None
        price = self._instruments[current.symbol].to_price(current.price_ticks or 0)
        return replace(change, leaves_before=current.leaves_quantity, price=price, side=current.side)
