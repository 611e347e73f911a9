"""MarketData table items in DynamoDB's wire format, built by hand (no serializer in the loop).

``pk = "SYMBOL#<symbol>"``; the book is ``sk = "BOOK"``; trades are
``sk = "TRADE#<seq:020d>#<trade_id:020d>"`` (one matching request can print several trades under
one sequence number), so a Query on ``begins_with(sk, "TRADE#")`` newest-first is the tape.
Prices are DynamoDB numbers in currency units.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .records import BookTop, Levels, TradePrint

BOOK_SK = "BOOK"
Item = dict[str, Any]


def partition_key(symbol: str) -> str:
    return f"SYMBOL#{symbol}"


def trade_sort_key(seq: int, trade_id: int) -> str:
    return f"TRADE#{seq:020d}#{trade_id:020d}"


def price_text(units: int, scale: int) -> str:
    """Integer price units as an exact decimal string (19025, 2 -> "190.25")."""
    if scale == 0:
        return str(units)
    whole, fraction = divmod(units, 10**scale)
    return f"{whole}.{fraction:0{scale}d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_seconds: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS"; a batch spans a few seconds


def iso_time(timestamp_ns: int) -> str:
    """UTC ISO-8601 with microseconds, truncated exactly (no float rounding)."""
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    text = _seconds.get(seconds)
    if text is None:
        if len(_seconds) > 4096:
            _seconds.clear()
        text = _seconds[seconds] = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}+00:00"


def trade_item(trade: TradePrint, ttl_s: int) -> Item:
    return {
        "pk": {"S": "SYMBOL#" + trade.symbol},
        "sk": {"S": trade_sort_key(trade.seq, trade.trade_id)},
        "symbol": {"S": trade.symbol},
        "price": {"N": price_text(trade.price, trade.price_scale)},
        "quantity": {"N": str(trade.quantity)},
        "execution_id": {"S": trade.execution_id},
        "aggressor_side": {"S": trade.aggressor_side},
        "node_seq": {"N": str(trade.seq)},
        "occurred_at": {"S": iso_time(trade.timestamp_ns)},
        "expires_at": {"N": str(trade.timestamp_ns // 1_000_000_000 + ttl_s)},
    }


def _price_or_null(units: int, scale: int) -> dict[str, Any]:
    return {"N": price_text(units, scale)} if units else {"NULL": True}


def _levels(levels: Levels, scale: int) -> dict[str, Any]:
    return {"L": [{"L": [{"N": price_text(p, scale)}, {"N": str(q)}]} for p, q in levels]}


def book_item(book: BookTop) -> Item:
    scale = book.price_scale
    return {
        "pk": {"S": partition_key(book.symbol)},
        "sk": {"S": BOOK_SK},
        "symbol": {"S": book.symbol},
        "bid_price": _price_or_null(book.bid_price, scale),
        "bid_quantity": {"N": str(book.bid_quantity)},
        "ask_price": _price_or_null(book.ask_price, scale),
        "ask_quantity": {"N": str(book.ask_quantity)},
        "bids": _levels(book.bids, scale),
        "asks": _levels(book.asks, scale),
        "node_seq": {"N": str(book.seq)},
        "book_seq": {"N": str(book.book_seq)},
        "updated_at": {"S": iso_time(book.timestamp_ns)},
        **({} if book.node is None else {"node": {"N": str(book.node)}, "halted": {"BOOL": book.halted}}),
    }
