"""An order as an Orders-table item, and back (with what the API keeps beside it for retries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orders_api.dal.dynamo import from_item, to_item
from orders_api.dal.interfaces import StoredOrder
from orders_api.models import Approval
from orders_api.records import OrderRecord


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
        "reference_ticks": record.reference_ticks,
        "cancel_reason": record.cancel_reason,
        "stop_price_ticks": record.stop_price_ticks,
        "filled_notional_ticks": record.filled_notional_ticks,
    }
    return to_item(values)


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


def item_to_record(item: dict[str, Any]) -> OrderRecord:
    v = from_item(item)
    price = v.get("price_ticks")
    node_order_id = v.get("node_order_id")
    reference = v.get("reference_ticks")
    stop = v.get("stop_price_ticks")
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
        reference_ticks=None if reference is None else int(reference),
        cancel_reason=v.get("cancel_reason"),
        stop_price_ticks=None if stop is None else int(stop),
        filled_notional_ticks=int(v.get("filled_notional_ticks", 0)),
    )


_KEY_AND_IMMUTABLE = frozenset(
    {"order_id", "account", "client_order_id", "symbol", "side", "created_at", "created_key"}
)
_NULLABLE = (
    "price_ticks",
    "node",
    "node_order_id",
    "reject_reason",
    "approval",
    "reference_ticks",
    "cancel_reason",
    "stop_price_ticks",
)


def record_update(
    record: OrderRecord, answer: str | None = None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(UpdateExpression, names, values) that make a stored order ``record``, keeping what the
    item holds beside it (the request's hash); an answer given is stored; the in-progress mark goes."""
    item = record_to_item(record)
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets: list[str] = []
    for index, (attribute, value) in enumerate(sorted(item.items())):
        if attribute in _KEY_AND_IMMUTABLE:
            continue
        names[f"#u{index}"] = attribute
        values[f":u{index}"] = value
        sets.append(f"#u{index} = :u{index}")
    if answer is not None:
        names["#answer"], values[":answer"] = "answer", {"S": answer}
        sets.append("#answer = :answer")
    removed = [attribute for attribute in _NULLABLE if attribute not in item]
    removes = [f"#r{i}" for i in range(len(removed))]
    names.update(dict(zip(removes, removed, strict=True)))
    names["#progress"] = "in_progress_until"
    expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join([*removes, "#progress"])
    return expression, names, values
