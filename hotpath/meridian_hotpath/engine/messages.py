"""Builders of the engine's answer messages (the protocol's NamedTuples)."""

from __future__ import annotations

from typing import Final

from meridian.protocol import Ack, CancelAck, Reject
from meridian_hotpath.engine.book import Order, order_status

# Builds a message NamedTuple without running its Python-level __new__ (Final: a C static in mypyc).
new_message: Final = tuple.__new__
_CANCEL_ACK: Final = CancelAck


def reject_message(
    request_id: int, seq: int, order_id: int, client_order_id: str, symbol: str, reason: int
) -> Reject:
    return Reject(request_id, seq, order_id, client_order_id, symbol, reason)


def cancel_message(request_id: int, seq: int, order: Order, reason: int, quantity: int) -> CancelAck:
    fields = (
        request_id,
        seq,
        order.order_id,
        order.client_order_id,
        order.account,
        order.symbol,
        reason,
        quantity,
    )
    return new_message(_CANCEL_ACK, fields)


def ack_message(request_id: int, seq: int, order: Order) -> Ack:
    return Ack(
        request_id, seq, order.order_id, order.client_order_id, order.account, order.symbol, order.side,
        order_status(order), order.quantity, order.leaves, order.filled, order.price,
    )  # fmt: skip
