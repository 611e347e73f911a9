"""Reads of the MarketData table written by the ``market_data`` function.

Keys: ``pk`` = "SYMBOL#<symbol>"; ``sk`` = "BOOK" (top of book and depth) or
"TRADE#<node_seq, 20 digits>" (the tape, so a backwards query gives the latest trades first).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meridian.dynamo_items import from_item, to_item
from orders_api.dal.interfaces import BookSnapshot, TapeTrade


def _levels(raw: Any) -> list[tuple[Decimal, int]]:
    return [(Decimal(str(price)), int(quantity)) for price, quantity in (raw or [])]


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class DynamoMarketDataReader:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def book(self, symbol: str) -> BookSnapshot | None:
        key = to_item({"pk": f"SYMBOL#{symbol}", "sk": "BOOK"})
        item = self._db.get_item(TableName=self._table, Key=key).get("Item")
        if not item:
            return None
        v = from_item(item)
        return BookSnapshot(
            symbol=symbol,
            bid_price=_decimal(v.get("bid_price")),
            bid_quantity=_int(v.get("bid_quantity")),
            ask_price=_decimal(v.get("ask_price")),
            ask_quantity=_int(v.get("ask_quantity")),
            bids=_levels(v.get("bids")),
            asks=_levels(v.get("asks")),
            node_seq=_int(v.get("node_seq")),
            book_seq=_int(v.get("book_seq")),
            updated_at=None if v.get("updated_at") is None else str(v["updated_at"]),
        )

    def last_trades(self, symbol: str, limit: int) -> list[TapeTrade]:
        answer = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :trade)",
            ExpressionAttributeValues=to_item({":pk": f"SYMBOL#{symbol}", ":trade": "TRADE#"}),
            ScanIndexForward=False,
            Limit=limit,
        )
        trades = []
        for item in answer.get("Items", []):
            v = from_item(item)
            trades.append(
                TapeTrade(
                    price=Decimal(str(v["price"])),
                    quantity=int(v["quantity"]),
                    execution_id=str(v.get("execution_id", "")),
                    occurred_at=str(v.get("occurred_at", "")),
                )
            )
        return trades
