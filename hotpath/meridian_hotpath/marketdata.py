"""Public market data: the node's trades and top-of-book changes as stream records (key = symbol).

The node is the tape's one source. Records go to the market-data stream through a
``publisher.StreamPublisher``: trades are kept until delivered (no snapshot covers an undelivered
one, and a start re-sends the trades it replays from the journal), top-of-book updates are
droppable (a newer one supersedes them). A re-sent trade carries ``"resent": true`` so the consumer
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
