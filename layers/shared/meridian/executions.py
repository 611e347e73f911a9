"""Executions: fleet-wide ids, order ids, and the matching node's private drop copy of each trade.

Trade ids are unique across the fleet. Every node has a number (0-65535) that is configured once
and kept in its data directory; the engine starts counting trades at ``trade_id_base(number)``, so
the top 16 bits of a trade id name the node and the low 48 bits count its trades. A symbol that
moves to another node keeps unique ids, and a node restored in the recovery region (same number,
same journal) continues the same sequence. The execution id ``"<node number>-<counter>"`` is read
straight off the trade id: nothing else (no address, no routing table) goes into it.

The drop copy is the node's authoritative record of every trade, with both sides' accounts and
order ids. The node writes one JSON record per trade to a private, encrypted stream after the
trade's journal record is durable, and re-sends the trades of every replayed input after a crash;
consumers are idempotent on ``execution_id``. It is private: the public market-data feed carries
price, size and side only.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

from meridian.domain import Side

if TYPE_CHECKING:  # annotations only: the event models import this module without the protocol
    from meridian.protocol import Fill

NODE_NUMBER_BITS: Final = 16
TRADE_COUNTER_BITS: Final = 64 - NODE_NUMBER_BITS
MAX_NODE_NUMBER: Final = (1 << NODE_NUMBER_BITS) - 1
_COUNTER_MASK: Final = (1 << TRADE_COUNTER_BITS) - 1
DROP_COPY_VERSION: Final = 1


def trade_id_base(node_number: int) -> int:
    """The trade id before a node's first trade (its first trade is this + 1)."""
    if not 0 <= node_number <= MAX_NODE_NUMBER:
        raise ValueError(f"node number must be 0-{MAX_NODE_NUMBER}, got {node_number}")
    return node_number << TRADE_COUNTER_BITS


def node_number_of(trade_id: int) -> int:
    return trade_id >> TRADE_COUNTER_BITS


def execution_id(trade_id: int) -> str:
    """The fleet-wide id of one trade: ``"<node number>-<trade counter>"``."""
    return f"{trade_id >> TRADE_COUNTER_BITS}-{trade_id & _COUNTER_MASK}"


def trade_id_of(execution_id_text: str) -> int:
    """The trade id an execution id names (the inverse of :func:`execution_id`).

    Raises ValueError for text that is not an execution id in its one canonical form.
    """
    node, dash, counter = execution_id_text.partition("-")
    if dash and node.isascii() and node.isdigit() and counter.isascii() and counter.isdigit():
        number, count = int(node), int(counter)
        if number <= MAX_NODE_NUMBER and count <= _COUNTER_MASK:
            trade_id = (number << TRADE_COUNTER_BITS) | count
            if execution_id(trade_id) == execution_id_text:
                return trade_id
    raise ValueError(f"{execution_id_text!r} is not an execution id")


def order_id_for(account: str, client_order_id: str) -> str:
    """The order id is derived from (account, client order id), so every retry names the same order
    and a fill, which carries both, finds its orders without an index."""
    digest = hashlib.sha256(f"{account}\0{client_order_id}".encode()).hexdigest()
    return f"ord_{digest[:24]}"


def drop_copy_record(fill: Fill, price: str, timestamp_ns: int) -> dict[str, int | str]:
    """The drop-copy JSON object of one trade; ``price`` is the decimal price as text."""
    return {
        "v": DROP_COPY_VERSION,
        "execution_id": execution_id(fill.trade_id),
        "trade_id": fill.trade_id,
        "seq": fill.seq,
        "symbol": fill.symbol,
        "price": price,
        "price_ticks": fill.price,
        "quantity": fill.quantity,
        "aggressor_side": Side(fill.aggressor_side).name,
        "buy_order_id": order_id_for(fill.buy_account, fill.buy_client_order_id),
        "sell_order_id": order_id_for(fill.sell_account, fill.sell_client_order_id),
        "buy_account": fill.buy_account,
        "sell_account": fill.sell_account,
        "buy_client_order_id": fill.buy_client_order_id,
        "sell_client_order_id": fill.sell_client_order_id,
        "buy_node_order_id": fill.buy_order_id,
        "sell_node_order_id": fill.sell_order_id,
        "buy_leaves_quantity": fill.buy_leaves_quantity,
        "sell_leaves_quantity": fill.sell_leaves_quantity,
        "timestamp_ns": timestamp_ns,
    }
