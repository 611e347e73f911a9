"""An order as an Orders-table item, and the update expressions that write one.

Three writers change a stored order: the order API (``record_update``: the whole new state, only
over the state it was derived from), the order flow's route step (``routed_update``: what the node
answered for an order held for approval) and the order-flow state machine (the REJECTED record of
a held order that never reached a node: ``HELD_REJECTED_UPDATE``, written literally in
``statemachines/order-flow.asl.json``, where Step Functions cannot import it; a test holds the two
equal). The resting orders an answer touched are written by ``meridian.resting_orders``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from meridian.dynamo_items import from_item, to_item
from meridian.orders.record import Approval, OrderRecord, OrderStatusName

HELD: Final[OrderStatusName] = "PENDING_APPROVAL"
HELD_CONDITION = "#s = :pending"  # :pending = HELD; #s = status
HELD_REJECTED_UPDATE = (
    "SET #s = :rejected, reject_reason = :reason, leaves_quantity = :zero, updated_at = :now"
)
ROUTED_UPDATE = (
    "SET #s = :status, node = :node, node_order_id = :node_order_id, filled_quantity = :filled, "
    "leaves_quantity = :leaves, last_seq = :seq, updated_at = :updated_at"
)


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


def routed_update(orders_table: str, record: OrderRecord) -> dict[str, Any]:
    """The ``Update`` that stores the node's answer to an order held for approval, only if it still
    awaits it: its state on the node, not the whole item (the approval beside it stays)."""
    return {
        "TableName": orders_table,
        "Key": {"order_id": {"S": record.order_id}},
        "UpdateExpression": ROUTED_UPDATE,
        "ConditionExpression": HELD_CONDITION,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":status": {"S": record.status},
            ":node": {"S": record.node or ""},
            ":node_order_id": {"N": str(record.node_order_id or 0)},
            ":filled": {"N": str(record.filled_quantity)},
            ":leaves": {"N": str(record.leaves_quantity)},
            ":seq": {"N": str(record.last_seq)},
            ":updated_at": {"S": record.updated_at.isoformat()},
            ":pending": {"S": HELD},
        },
    }
