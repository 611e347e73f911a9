"""Does the replicated market data agree with the restored engine?

The market-data table is a global table: the recovery region holds the primary's last book and tape
per symbol, each stamped with the node sequence it was published at. Published data is public: a
book or trade beyond the restored sequence shows the market something the recovery engine does not
know (records lost in the cut). Each symbol's check reports the sequences and a SHA-256 of the
replicated book's levels, so two runs (or two regions) can be compared.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from meridian.dynamo_items import from_item


def published(dynamodb: Any, table: str, symbol: str) -> tuple[dict[str, Any] | None, int | None]:
    """(the replicated book item or None, the newest replicated trade's node seq or None)."""
    key = f"SYMBOL#{symbol}"
    book = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": key}, "sk": {"S": "BOOK"}}, ConsistentRead=True
    )
    trades = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :trade)",
        ExpressionAttributeValues={":pk": {"S": key}, ":trade": {"S": "TRADE#"}},
        ScanIndexForward=False,
        Limit=1,
    ).get("Items", [])
    newest = int(from_item(trades[0])["node_seq"]) if trades else None
    return (from_item(book["Item"]) if "Item" in book else None), newest


def book_digest(book: Mapping[str, Any]) -> str:
    """SHA-256 of the book's levels and sequence, as replicated (first 16 hex digits)."""
    levels = {side: book.get(side) for side in ("bids", "asks", "bid_price", "ask_price", "node_seq")}
    text = json.dumps(levels, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_symbol(
    book: Mapping[str, Any] | None, newest_trade_seq: int | None, restored_seq: int, accept_data_loss: bool
) -> tuple[bool, bool, str]:
    """(ok, skipped, detail) for one symbol."""
    if book is None and newest_trade_seq is None:
        return True, True, "no market data replicated for the symbol"
    book_seq = int(book["node_seq"]) if book else None
    ahead = max(s for s in (book_seq, newest_trade_seq) if s is not None)
    digest = f", book {book_digest(book)}" if book else ""
    detail = (
        f"book at seq {book_seq}, newest trade at seq {newest_trade_seq}{digest}; restored seq {restored_seq}"
    )
    if ahead <= restored_seq:
        return True, False, detail
    lost = f"{detail}: market data published beyond the restored engine (records lost in the cut)"
    return accept_data_loss, False, lost + (" (accepted)" if accept_data_loss else "")
