"""The Orders table: one item per order, keyed by the API order id.

Indexes (all sorted by ``created_key`` = creation time + id, newest first when read backwards):
``AccountIndex`` (account), ``StatusIndex`` (status), ``SymbolIndex`` (symbol), and the sparse
``OpenIndex`` (``open_account``, present only while the order is open) that counts open orders.
Writes from a node answer are conditional on ``last_seq`` so an older answer never overwrites a
newer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from orders_api.dal.dynamo import decode_token, encode_token, from_item, to_item
from orders_api.dal.interfaces import FillUpdate, OrderQuery, Page
from orders_api.models import Approval
from orders_api.records import OPEN_STATUSES, OrderRecord

_TABLE_KEYS = frozenset({"order_id"})
_INDEX_KEYS = {
    "AccountIndex": frozenset({"order_id", "account", "created_key"}),
    "StatusIndex": frozenset({"order_id", "status", "created_key"}),
    "SymbolIndex": frozenset({"order_id", "symbol", "created_key"}),
}


_STILL_OPEN_AND_OLDER = "attribute_exists(order_id) AND last_seq < :seq AND #s IN (:new, :partially)"


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def record_to_item(record: OrderRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        "order_id": record.order_id,
        "account": record.account,
        "client_order_id": record.client_order_id,
        "symbol": record.symbol,
        "side": record.side,
        "type": record.type,
        "time_in_force": record.time_in_force,
        "quantity": record.quantity,
        "price_ticks": record.price_ticks,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "created_key": f"{record.created_at.isoformat()}#{record.order_id}",
        "order_flags": record.order_flags,
        "filled_quantity": record.filled_quantity,
        "leaves_quantity": record.leaves_quantity,
        "node": record.node,
        "node_order_id": record.node_order_id,
        "last_seq": record.last_seq,
        "reject_reason": record.reject_reason,
        "approval": record.approval.model_dump(mode="json") if record.approval else None,
        "submitted_by": record.submitted_by,
        "open_account": record.account if record.status in OPEN_STATUSES else None,
    }
    return to_item(values)


def item_to_record(item: dict[str, Any]) -> OrderRecord:
    v = from_item(item)
    price = v.get("price_ticks")
    node_order_id = v.get("node_order_id")
    return OrderRecord(
        order_id=v["order_id"],
        account=v["account"],
        client_order_id=v["client_order_id"],
        symbol=v["symbol"],
        side=v["side"],
        type=v["type"],
        time_in_force=v["time_in_force"],
        quantity=int(v["quantity"]),
        price_ticks=None if price is None else int(price),
        status=v["status"],
        created_at=datetime.fromisoformat(v["created_at"]),
        updated_at=datetime.fromisoformat(v["updated_at"]),
        order_flags=int(v.get("order_flags", 0)),
        filled_quantity=int(v.get("filled_quantity", 0)),
        leaves_quantity=int(v.get("leaves_quantity", 0)),
        node=v.get("node"),
        node_order_id=None if node_order_id is None else int(node_order_id),
        last_seq=int(v.get("last_seq", 0)),
        reject_reason=v.get("reject_reason"),
        approval=Approval.model_validate(v["approval"]) if v.get("approval") else None,
        submitted_by=v.get("submitted_by", ""),
    )


class DynamoOrderStore:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def get(self, order_id: str) -> OrderRecord | None:
        answer = self._db.get_item(
            TableName=self._table, Key=to_item({"order_id": order_id}), ConsistentRead=True
        )
        item = answer.get("Item")
        return item_to_record(item) if item else None

    def create(self, record: OrderRecord) -> bool:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=record_to_item(record),
                ConditionExpression="attribute_not_exists(order_id)",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def save(self, record: OrderRecord) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=record_to_item(record),
                ConditionExpression="attribute_not_exists(order_id) OR last_seq <= :seq",
                ExpressionAttributeValues=to_item({":seq": record.last_seq}),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            # A newer answer about this order is stored already: it wins.

    def apply_updates(self, updates: Sequence[FillUpdate]) -> None:
        for update in updates:
            self._apply(update)

    def _apply(self, update: FillUpdate) -> None:
        if update.cancelled:
            expression = "SET leaves_quantity = :zero, #s = :cancelled, last_seq = :seq REMOVE open_account"
            values: dict[str, Any] = {":zero": 0, ":cancelled": "CANCELLED"}
        elif update.leaves_quantity == 0:
            expression = (
                "SET leaves_quantity = :zero, filled_quantity = quantity, #s = :filled, last_seq = :seq "
                "REMOVE open_account"
            )
            values = {":zero": 0, ":filled": "FILLED"}
        else:
            expression = (
                "SET leaves_quantity = :leaves, filled_quantity = quantity - :leaves, #s = :partial, "
                "last_seq = :seq"
            )
            values = {":leaves": update.leaves_quantity, ":partial": "PARTIALLY_FILLED"}
        values.update({":seq": update.seq, ":new": "NEW", ":partially": "PARTIALLY_FILLED"})
        try:
            self._db.update_item(
                TableName=self._table,
                Key=to_item({"order_id": update.order_id}),
                UpdateExpression=expression,
                ConditionExpression=_STILL_OPEN_AND_OLDER,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            # Not an order this API placed, already terminal, or a newer state is stored.

    def count_open(self, account: str) -> int:
        answer = self._db.query(
            TableName=self._table,
            IndexName="OpenIndex",
            KeyConditionExpression="open_account = :a",
            ExpressionAttributeValues=to_item({":a": account}),
            Select="COUNT",
        )
        total = int(answer.get("Count", 0))
        while "LastEvaluatedKey" in answer:
            answer = self._db.query(
                TableName=self._table,
                IndexName="OpenIndex",
                KeyConditionExpression="open_account = :a",
                ExpressionAttributeValues=to_item({":a": account}),
                Select="COUNT",
                ExclusiveStartKey=answer["LastEvaluatedKey"],
            )
            total += int(answer.get("Count", 0))
        return total

    def list(self, query: OrderQuery) -> Page:
        """Newest first. The most selective index is queried; the other filters narrow the page."""
        request: dict[str, Any] = {"TableName": self._table, "Limit": query.limit}
        filters: dict[str, str] = {}
        if query.account is not None:
            index, key_name, key_value = "AccountIndex", "account", query.account
            filters = {k: v for k, v in (("status", query.status), ("symbol", query.symbol)) if v}
        elif query.status is not None:
            index, key_name, key_value = "StatusIndex", "status", query.status
            filters = {"symbol": query.symbol} if query.symbol else {}
        elif query.symbol is not None:
            index, key_name, key_value = "SymbolIndex", "symbol", query.symbol
        else:
            index, key_name, key_value = "", "", ""
        query_id = f"{index}|{key_value}|{query.status}|{query.symbol}"
        names = {"#k": key_name} if index else {}
        values: dict[str, Any] = {":k": key_value} if index else {}
        if filters:
            names.update({f"#f{i}": name for i, name in enumerate(filters)})
            values.update({f":f{i}": value for i, value in enumerate(filters.values())})
            request["FilterExpression"] = " AND ".join(f"#f{i} = :f{i}" for i in range(len(filters)))
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = to_item(values)
        if query.next_token:
            key_names = _INDEX_KEYS[index] if index else _TABLE_KEYS
            request["ExclusiveStartKey"] = decode_token(query.next_token, query_id, key_names)
        if index:
            request.update(IndexName=index, KeyConditionExpression="#k = :k", ScanIndexForward=False)
            answer = self._db.query(**request)
        else:
            answer = self._db.scan(**request)
        records = [item_to_record(item) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return Page(records, encode_token(last, query_id) if last else None)
