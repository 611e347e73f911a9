"""Canonical forms of engine state: checksums and the snapshot encoding.

Both engines (the fast one and the reference model) describe their state with the records below,
so equal states give equal checksums whatever the data structures behind them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, NamedTuple

from meridian.domain import Instrument

SNAPSHOT_FORMAT = "meridian-engine-snapshot"
SNAPSHOT_VERSION = 1


class OrderRecord(NamedTuple):
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    price: int
    quantity: int
    leaves: int
    filled: int
    cancelled: int


class OrderView(NamedTuple):
    """A read-only picture of one order, for lookups by tests, the node and recovery."""

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    price: int
    quantity: int
    leaves_quantity: int
    filled_quantity: int
    cancelled_quantity: int
    status: int
    stop_price: int = 0  # a stop order's trigger price (0: not a stop order)


class BookRecord(NamedTuple):
    symbol: str
    halted: bool
    last_price: int
    bids: list[int]  # resting order ids, best price first, time priority within a price
    asks: list[int]


class EngineState(NamedTuple):
    instruments: list[Instrument]
    seq: int
    trade_id: int
    global_halt: bool
    books: list[BookRecord]
    orders: list[OrderRecord]  # every order ever accepted, by order id
    checksum: int


def _digest(rows: list[tuple[int | str, ...]]) -> int:
    """u64 (BLAKE2b) over rows of ints and strings; an IntEnum member counts as its value."""
    text = "\x1e".join("\x1f".join(v if isinstance(v, str) else str(int(v)) for v in row) for row in rows)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def book_checksum(
    symbol: str,
    halted: bool,
    last_price: int,
    resting: list[OrderRecord],
    stops: list[tuple[int | str, ...]] | None = None,
) -> int:
    """u64 over one book: its trading state, its resting orders (bids then asks, in priority order)
    and its waiting stop orders (``OrderRecord`` + stop price, in trigger order). A book without
    waiting stops sums as it did before stop orders existed, so older snapshots still verify."""
    rows: list[tuple[int | str, ...]] = [(symbol, int(halted), last_price), *resting]
    if stops:
        rows += [("stops",), *stops]
    return _digest(rows)


def engine_checksum(
    seq: int, order_count: int, trade_id: int, global_halt: bool, book_checksums: dict[str, int]
) -> int:
    """u64 over the engine's counters and every book's checksum."""
    return _digest([(seq, order_count, trade_id, int(global_halt)), *sorted(book_checksums.items())])


def encode_snapshot(state: EngineState) -> bytes:
    document = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "instruments": [dataclasses.astuple(instrument) for instrument in state.instruments],
        "seq": state.seq,
        "trade_id": state.trade_id,
        "global_halt": state.global_halt,
        "books": [list(book) for book in state.books],
        "orders": [list(order) for order in state.orders],
        "checksum": state.checksum,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def decode_snapshot(data: bytes) -> EngineState:
    """The state in ``data``; ValueError when it is not a snapshot this engine can read."""
    try:
        document: Any = json.loads(data)
        if document.get("format") != SNAPSHOT_FORMAT or document.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a version 1 matching engine snapshot")
        return EngineState(
            instruments=[Instrument(*fields) for fields in document["instruments"]],
            seq=int(document["seq"]),
            trade_id=int(document["trade_id"]),
            global_halt=bool(document["global_halt"]),
            books=[
                BookRecord(str(s), bool(h), int(p), list(b), list(a)) for s, h, p, b, a in document["books"]
            ],
            orders=[OrderRecord(*fields) for fields in document["orders"]],
            checksum=int(document["checksum"]),
        )
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed engine snapshot: {exc!r}") from None
