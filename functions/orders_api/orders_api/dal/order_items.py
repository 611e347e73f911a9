"""An order's item (``meridian.orders.items``) with what the API keeps beside it for retries."""

from __future__ import annotations

from typing import Any

from meridian.dynamo_items import from_item, to_item
from meridian.orders.items import item_to_record, record_to_item
from orders_api.dal.interfaces import StoredOrder


def stored_to_item(stored: StoredOrder) -> dict[str, Any]:
    item = record_to_item(stored.record)
    extra = {
        "answer": stored.answer,
        "request_hash": stored.request_hash,
        "in_progress_until": stored.in_progress_until or None,
    }
    return {**item, **to_item(extra)}


def item_to_stored(item: dict[str, Any]) -> StoredOrder:
    v = from_item(item)
    return StoredOrder(
        record=item_to_record(item),
        answer=v.get("answer"),
        request_hash=v.get("request_hash"),
        in_progress_until=int(v.get("in_progress_until", 0)),
    )
