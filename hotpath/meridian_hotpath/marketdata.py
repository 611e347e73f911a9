"""Public market data: the node's trades and book changes as stream records (key = symbol).

The node is the tape's one source. Records go to the market-data stream through a
``publisher.StreamPublisher``: trades are kept until delivered (no snapshot covers an undelivered
one, and a start re-sends the trades it replays from the journal), book updates are droppable (a
newer one supersedes them).

A book update (``book_record``) carries the best ``levels`` price levels of each side, whole, and
``book_seq``: the symbol's book updates numbered 1, 2, 3... from the follower's start. A consumer
that sees ``book_seq`` skip (the publisher or the sink conflated updates under pressure) or go back
to 1 (the follower restarted) knows it missed changes, and re-syncs from the record itself: each
one is a snapshot of the top ``levels`` levels, so the newest record is always a correct book and
conflation never leaves a consumer with a wrong one. ``seq`` is the journal seq the book stands at
(it orders updates across restarts). A re-sent trade carries ``"resent": true`` so the consumer
keeps the copy it already has (``functions/market_data``). The records carry price, size and side
only, never the accounts or client order ids behind a trade: those go to the private drop copy
(``dropcopy``).
"""

from __future__ import annotations

from meridian.protocol import Fill
from meridian_hotpath.publisher import StreamRecord


def trade_record(fill: Fill, timestamp_ns: int, resent: bool = False) -> StreamRecord:
    """``resent``: a trade replayed from the journal at start, which may have been delivered before."""
    payload: dict[str, int | str] = {
        "type": "trade",
        "symbol": fill.symbol,
        "seq": fill.seq,
        "trade_id": fill.trade_id,
        "price": fill.price,
        "quantity": fill.quantity,
        "aggressor_side": fill.aggressor_side,
        "timestamp_ns": timestamp_ns,
    }
    if resent:
        payload["resent"] = True
    return StreamRecord(fill.symbol, payload, fill.seq)


DEFAULT_DEPTH_LEVELS = 10
MAX_DEPTH_LEVELS = 100
Level = tuple[int, int]  # price units, total quantity


def book_record(
    symbol: str,
    seq: int,
    book_seq: int,
    depth: tuple[list[Level], list[Level]],
    levels: int,
    timestamp_ns: int,
    node: int = 0,
    halted: bool = False,
) -> StreamRecord:
    """The top ``levels`` levels of ``symbol``'s book (best first), its ``book_seq`` and journal
    ``seq``, the ``node`` number whose book it is and whether the symbol is ``halted`` there."""
    bids, asks = depth
    return StreamRecord(
        symbol,
        {
            "type": "book",
            "symbol": symbol,
            "seq": seq,
            "book_seq": book_seq,
            "levels": levels,
            "bids": [[price, quantity] for price, quantity in bids],
            "asks": [[price, quantity] for price, quantity in asks],
            "timestamp_ns": timestamp_ns,
            "node": node,
            "halted": halted,
        },
        seq,
        droppable=True,
    )


def top_of_book_record(
    symbol: str, seq: int, top: tuple[int, int, int, int], timestamp_ns: int
) -> StreamRecord:
    bid_price, bid_quantity, ask_price, ask_quantity = top
    return StreamRecord(
        symbol,
        {
            "type": "top_of_book",
            "symbol": symbol,
            "seq": seq,
            "bid_price": bid_price,
            "bid_quantity": bid_quantity,
            "ask_price": ask_price,
            "ask_quantity": ask_quantity,
            "timestamp_ns": timestamp_ns,
        },
        seq,
        droppable=True,
    )
