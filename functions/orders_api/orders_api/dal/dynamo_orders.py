"""The Orders table: one item per order, keyed by the API order id; reads and the item layout.

Indexes (all sorted by ``created_key`` = creation time + id, newest first when read backwards):
``AccountIndex`` (account), ``StatusIndex`` (status), ``SymbolIndex`` (symbol). Beside the order,
an item keeps what retries of its submission need: the first ``answer``, the ``request_hash`` and
``in_progress_until``. The writes (create with the exposure reservation, record a node's answer)
are transactions: ``dynamo_order_writes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meridian.domain import Instrument
from meridian.dynamo_items import to_item
from meridian.orders.items import item_to_record
from meridian.orders.record import OrderRecord
from orders_api.dal.dynamo import decode_token, encode_token
from orders_api.dal.dynamo_order_writes import DynamoOrderWrites
from orders_api.dal.interfaces import OrderQuery, Page, StoredOrder
from orders_api.dal.order_items import item_to_stored

_TABLE_KEYS = frozenset({"order_id"})
_INDEX_KEYS = {
    "AccountIndex": frozenset({"order_id", "account", "created_key"}),
    "StatusIndex": frozenset({"order_id", "status", "created_key"}),
    "SymbolIndex": frozenset({"order_id", "symbol", "created_key"}),
}


class DynamoOrderStore(DynamoOrderWrites):
    def __init__(
        self,
        client: Any,
        table: str,
        exposure_table: str,
        keys_table: str,
        instruments: Mapping[str, Instrument],
    ) -> None:
        self._db = client
        self._table = table
        self._exposure_table = exposure_table
        self._keys_table = keys_table
        self._instruments = instruments

    def get(self, order_id: str) -> OrderRecord | None:
        stored = self.get_stored(order_id)
        return stored.record if stored else None

    def get_stored(self, order_id: str) -> StoredOrder | None:
        answer = self._db.get_item(
            TableName=self._table, Key=to_item({"order_id": order_id}), ConsistentRead=True
        )
        item = answer.get("Item")
        return item_to_stored(item) if item else None

    def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        found: dict[str, OrderRecord] = {}
        wanted = sorted(set(order_ids))
        for start in range(0, len(wanted), 100):
            keys = [to_item({"order_id": i}) for i in wanted[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = self._db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    record = item_to_record(item)
                    found[record.order_id] = record
                request = answer.get("UnprocessedKeys") or {}
        return found

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
