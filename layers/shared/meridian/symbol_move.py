"""Moving a symbol's book from one matching shard to another without losing an order or its place.

The runbook (``statemachines/symbol-move.asl.json``, docs/runbooks/symbol-move.md) runs these steps
in order; each one reads what it needs from the nodes themselves, so a step that fails or times out
is simply run again:

1. ``halt`` the symbol on the source shard: nothing trades it there any more (a cancel still may).
2. ``copy_book``: the source's working orders (``BOOK_EXPORT``, in priority order) are entered on the
   destination in that order, as post-only orders with their own account, client order id, side,
   price, time in force and open quantity; waiting stop orders as stop orders. Resting orders of a
   book never cross, so none trades; entering them in the source's priority order keeps every
   order's place in its price level, and orders that arrive after the move queue behind them. An
   order already copied by an earlier attempt is answered as a duplicate of its client order id and
   is checked to be the same order. The destination is then halted until the route switches.
3. ``remove_from_source``: each copied order is cancelled on the source. An order its owner
   cancelled there in the meantime (the source's cancel finds it finished) has its copy cancelled
   too, so exactly one of the two ever works.
4. The order records (``meridian.orders``) learn the destination's order ids, the route table
   (``meridian.routing``) sends the symbol to the destination, and
5. ``resume`` trades it there.

Copying before removing makes the move crash-safe: until step 3 has run, every order is still on
the source; after it, every order is on the destination. A copy is never made of an order that is
not on the source (the export is taken while the symbol is halted there), and an order is removed
from the source only once its copy exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meridian.client import BookExportRefusedError, HotpathClient
from meridian.domain import OrderStatus, RejectReason
from meridian.executions import order_id_for
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    Ack,
    Admin,
    AdminAck,
    AdminAction,
    Cancel,
    CancelAck,
    Fill,
    NewOrder,
    NewStopOrder,
    Reject,
    RestingOrder,
)
from meridian.routing import RouteTable, parse_addresses

OrderKey = tuple[str, str]  # (account, client order id): an order's name on every shard


class SymbolMoveError(Exception):
    """A step of a symbol move cannot go on; the symbol stays halted and nothing was lost."""


class RecordBehindError(SymbolMoveError):
    """An order record does not show the open quantity its copy has: an answer that changed it is
    still being written (the runbook retries the step), or it needs reconciling by hand."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    symbol: str
    source_seq: int  # the source's seq at the export the copy was made from
    orders: int  # working orders on the source
    copied: int  # entered on the destination by this run
    already_copied: int  # found there from an earlier run
    destination: dict[OrderKey, int] = field(default_factory=dict)  # the copies' order ids


@dataclass(frozen=True, slots=True)
class RemoveReport:
    symbol: str
    removed: int  # cancelled on the source by this run
    finished_meanwhile: int  # cancelled by their owners meanwhile: their copies cancelled too
    left_on_source: int  # working on the source after this run (0 once the step is done)


def key_of(order: RestingOrder) -> OrderKey:
    return order.account, order.client_order_id


def halt(admin: HotpathClient, symbol: str) -> int:
    """Halt ``symbol`` on the node behind ``admin`` (idempotent); the seq of the halt."""
    return _admin(admin, symbol, AdminAction.HALT)


def resume(admin: HotpathClient, symbol: str) -> int:
    return _admin(admin, symbol, AdminAction.RESUME)


def _admin(admin: HotpathClient, symbol: str, action: AdminAction) -> int:
    last = admin.exchange(Admin(0, symbol, int(action))).messages[-1]
    if isinstance(last, Reject):
        raise SymbolMoveError(f"{action.name} of {symbol} refused: {RejectReason(last.reason).name}")
    if not isinstance(last, AdminAck):
        raise SymbolMoveError(f"{action.name} of {symbol}: unexpected answer {type(last).__name__}")
    return last.seq


def same_book(source: Iterable[RestingOrder], destination: Iterable[RestingOrder]) -> bool:
    """Whether two exports hold the same orders in the same priority (order ids aside)."""
    return [_shape(o) for o in source] == [_shape(o) for o in destination]


def _shape(o: RestingOrder) -> tuple[object, ...]:
    return (
        o.account,
        o.client_order_id,
        o.symbol,
        o.side,
        o.order_type,
        o.time_in_force,
        o.leaves_quantity,
        o.price,
        o.stop_price,
    )


def _copy_request(order: RestingOrder) -> NewOrder | NewStopOrder:
    """The order entering ``order``'s copy: a stop order as a stop order, any other as post-only."""
    named = (order.client_order_id, order.account, order.symbol, order.side, order.order_type)
    if order.stop_price:
        return NewStopOrder(
            0, *named, order.time_in_force, order.order_flags, order.leaves_quantity, order.price,
            order.stop_price,
        )  # fmt: skip
    return NewOrder(
        0, *named, order.time_in_force, order.order_flags | ORDER_FLAG_POST_ONLY, order.leaves_quantity,
        order.price,
    )  # fmt: skip


def _check_copy(order: RestingOrder, messages: Sequence[object], duplicate: bool) -> int:
    """The copy's order id on the destination, or SymbolMoveError if it is not the same order."""
    if any(isinstance(m, Fill) for m in messages):
        raise SymbolMoveError(f"copy of {key_of(order)} traded on the destination")
    head = messages[0]
    if isinstance(head, Reject):
        raise SymbolMoveError(
            f"destination refused the copy of {key_of(order)}: {RejectReason(head.reason).name}"
        )
    if not isinstance(head, Ack):
        raise SymbolMoveError(f"copy of {key_of(order)}: unexpected answer {type(head).__name__}")
    waiting = OrderStatus.PENDING_TRIGGER if order.stop_price else OrderStatus.NEW
    same = (
        head.symbol == order.symbol
        and head.side == order.side
        and head.leaves_quantity == order.leaves_quantity
        and (head.price == order.price or order.price == 0)
    )
    if not same or (not duplicate and head.status != waiting):
        raise SymbolMoveError(
            f"the destination holds {key_of(order)} as another order (status "
            f"{OrderStatus(head.status).name}, {head.leaves_quantity} at {head.price}): a client order "
            "id used there before; move it by hand"
        )
    return head.order_id


def copy_book(
    source_admin: HotpathClient,
    destination_admin: HotpathClient,
    destination_orders: HotpathClient,
    symbol: str,
) -> CopyReport:
    """Step 2: enter the halted source's working orders on the destination, then halt it there."""
    exported = source_admin.export_book(symbol)
    present, was_trading = _working(destination_admin, symbol)
    if not exported.orders:  # nothing (left) to copy: a book already removed from the source
        return CopyReport(symbol, exported.seq, 0, 0, 0, {})
    strangers = [key for key in present if key not in {key_of(o) for o in exported.orders}]
    if strangers:
        if was_trading:  # its own book, halted only to be read: it trades on as it did
            resume(destination_admin, symbol)
        raise SymbolMoveError(
            f"the destination already trades {symbol} ({len(strangers)} orders of its own, e.g. "
            f"{strangers[0]}): a move needs its book empty"
        )
    resume(destination_admin, symbol)  # copies are orders: the destination takes them while it trades
    try:
        destination: dict[OrderKey, int] = {}
        copied = already = 0
        # In priority order on one connection (the node takes a connection's frames in order), so
        # each copy queues behind the one before; pipelined, so the halt lasts microseconds per order.
        answers = destination_orders.pipeline([_copy_request(order) for order in exported.orders])
        for order, answer in zip(exported.orders, answers, strict=True):
            destination[key_of(order)] = _check_copy(order, answer.messages, answer.duplicate)
            if answer.duplicate:
                already += 1
            else:
                copied += 1
    finally:
        halt(destination_admin, symbol)
    return CopyReport(symbol, exported.seq, len(exported.orders), copied, already, destination)


def _working(admin: HotpathClient, symbol: str) -> tuple[dict[OrderKey, RestingOrder], bool]:
    """The symbol's working orders on a node, halting it for the export if it trades (then True)."""
    try:
        book, was_trading = admin.export_book(symbol), False
    except BookExportRefusedError as refused:
        if refused.reason is not RejectReason.SYMBOL_NOT_HALTED:
            raise
        halt(admin, symbol)
        book, was_trading = admin.export_book(symbol), True
    return {key_of(o): o for o in book.orders}, was_trading


def remove_from_source(
    source_admin: HotpathClient,
    source_orders: HotpathClient,
    destination_admin: HotpathClient,
    destination_orders: HotpathClient,
    symbol: str,
) -> RemoveReport:
    """Step 3: cancel on the source every order whose copy is on the destination."""
    on_source = source_admin.export_book(symbol)
    copies = {key_of(o): o for o in destination_admin.export_book(symbol).orders}
    missing = [key_of(o) for o in on_source.orders if key_of(o) not in copies]
    if missing:
        raise SymbolMoveError(
            f"{len(missing)} of {symbol}'s orders have no copy on the destination (e.g. {missing[0]}): "
            "run the copy step again"
        )
    removed = finished = 0
    cancels = [Cancel(0, order.account, symbol, order.order_id) for order in on_source.orders]
    for order, answer in zip(on_source.orders, source_orders.pipeline(cancels), strict=True):
        head = answer.messages[0]
        if isinstance(head, CancelAck):
            removed += 1
            continue
        if isinstance(head, Reject) and head.reason == RejectReason.UNKNOWN_ORDER:
            copy = copies[key_of(order)]  # its owner cancelled it on the source: so goes its copy
            cancel_copy(destination_orders, copy)
            finished += 1
            continue
        raise SymbolMoveError(f"cancel of {key_of(order)} on the source: unexpected answer {head!r}")
    left = len(source_admin.export_book(symbol).orders)
    return RemoveReport(symbol, removed, finished, left)


def cancel_copy(destination_orders: HotpathClient, copy: RestingOrder) -> bool:
    """Cancel an order's copy on the destination; False if it was no longer working there."""
    head = destination_orders.exchange(Cancel(0, copy.account, copy.symbol, copy.order_id)).messages[0]
    if isinstance(head, CancelAck):
        return True
    if isinstance(head, Reject) and head.reason == RejectReason.UNKNOWN_ORDER:
        return False
    raise SymbolMoveError(f"cancel of the copy of {key_of(copy)}: unexpected answer {head!r}")


# ---- step 4: the order records and the route -------------------------------------------------------

POINT_UPDATE = "SET node = :node, node_order_id = :node_order_id, last_seq = :seq"
POINT_CONDITION = (
    "attribute_exists(order_id) AND #s IN (:new, :partially, :pending_trigger) AND leaves_quantity = :leaves"
)
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED", "PENDING_TRIGGER")


@dataclass(frozen=True, slots=True)
class PointReport:
    symbol: str
    pointed: int  # order records that now name the destination's order ids
    not_api_orders: int  # copies with no order record (entered on the node directly)
    closed_copies_cancelled: int  # their records were closed meanwhile (cancelled on the source)


def point_records(
    dynamodb: Any,
    table: str,
    destination_admin: HotpathClient,
    destination_orders: HotpathClient,
    destination_node: str,
    symbol: str,
) -> PointReport:
    """Step 4a: each moved order's record names its copy (node, order id) and the destination's seq,
    so later fills there (higher seqs) apply to it and a cancel finds it. A record closed in the
    meantime (its owner cancelled it on the source) has its copy cancelled instead: never resurrected."""
    book = destination_admin.export_book(symbol)
    pointed = strangers = closed = 0
    for copy in book.orders:
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"order_id": {"S": order_id_for(copy.account, copy.client_order_id)}},
                UpdateExpression=POINT_UPDATE,
                ConditionExpression=POINT_CONDITION,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":node": {"S": destination_node},
                    ":node_order_id": {"N": str(copy.order_id)},
                    ":seq": {"N": str(book.seq)},
                    ":leaves": {"N": str(copy.leaves_quantity)},
                    **_OPEN_VALUES,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            pointed += 1
        except dynamodb.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            if old is None:
                strangers += 1
                continue
            status = old.get("status", {}).get("S")
            if status in OPEN_STATUSES:
                raise RecordBehindError(
                    f"the record of {key_of(copy)} says {old.get('leaves_quantity')} open, its copy "
                    f"{copy.leaves_quantity}: reconcile it by hand"
                ) from None
            cancel_copy(destination_orders, copy)
            closed += 1
    return PointReport(symbol, pointed, strangers, closed)


_OPEN_VALUES = {
    f":{name}": {"S": status}
    for name, status in zip(("new", "partially", "pending_trigger"), OPEN_STATUSES, strict=True)
}


def switch_route(ssm: Any, parameter: str, symbol: str, destination_node: str) -> bool:
    """Step 4b: the route table (an SSM parameter) sends ``symbol`` to the destination's nodes
    (``host:port[,host:port]``). False if it already did. Readers pick it up within their TTL."""
    current = ssm.get_parameter(Name=parameter)["Parameter"]
    table = RouteTable.from_json(current["Value"])
    if table.addresses_for(symbol) == parse_addresses(destination_node):
        return False
    raw = json.loads(current["Value"])
    raw.setdefault("symbols", {})[symbol] = destination_node
    RouteTable.from_mapping(raw)  # never write a table the readers would refuse
    ssm.put_parameter(Name=parameter, Value=json.dumps(raw, sort_keys=True), Type="String", Overwrite=True)
    return True
