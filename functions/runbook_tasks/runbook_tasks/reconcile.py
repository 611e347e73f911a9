"""What the primary acknowledged that the restored engine does not hold: listed for reconciliation.

The orders table is a global table: the recovery region holds every order the primary recorded, with
the node sequence of the last node message about it (``last_seq``: the ack, a fill, a cancel). An
order whose ``last_seq`` is beyond the restored engine's sequence has an ack or an execution the
recovery region's engine never saw; an ``UNCONFIRMED`` order was sent and never answered. Both are
listed with their client order ids. Every order still open on the book is read (whatever its age),
and the orders that closed within the reconciliation window.

The ledger replica can likewise hold trades beyond the restored sequence (the drop copy reached the
ledger before the journal reached the archive): those are listed with both sides' client order ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg

from meridian.dynamo_items import from_item

OPEN_ON_NODE = ("NEW", "PARTIALLY_FILLED", "UNCONFIRMED")
CLOSED_BY_NODE = ("FILLED", "CANCELLED", "EXPIRED")
STATUS_INDEX = "StatusIndex"


def _query(dynamodb: Any, table: str, status: str, since: str | None) -> Iterator[dict[str, Any]]:
    args: dict[str, Any] = {
        "TableName": table,
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": "#s = :s" + (" AND created_key >= :since" if since else ""),
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": status}, **({":since": {"S": since}} if since else {})},
    }
    while True:
        page = dynamodb.query(**args)
        for item in page.get("Items", []):
            yield from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def recent_orders(
    dynamodb: Any, table: str, now: datetime, window_seconds: float
) -> Iterator[dict[str, Any]]:
    """Every order open on the node, and every order closed by the node created within the window."""
    since = (now - timedelta(seconds=window_seconds)).isoformat()
    for status in OPEN_ON_NODE:
        yield from _query(dynamodb, table, status, None)
    for status in CLOSED_BY_NODE:
        yield from _query(dynamodb, table, status, since)


def orders_to_reconcile(
    orders: Iterable[Mapping[str, Any]], restored_seq_of_symbol: Mapping[str, int]
) -> tuple[int, list[dict[str, Any]]]:
    """(orders the restored engine holds, orders to reconcile) among ``orders``."""
    present, listed = 0, []
    for order in orders:
        symbol = str(order["symbol"])
        restored = restored_seq_of_symbol.get(symbol)
        last_seq = int(order.get("last_seq") or 0)
        unconfirmed = order["status"] == "UNCONFIRMED"
        if restored is not None and last_seq <= restored and not unconfirmed:
            present += 1
            continue
        why = (
            "sent, never answered: it may or may not be on the book"
            if unconfirmed
            else "the primary's last node message about it is not in the restored engine"
            if restored is not None
            else "no restored node holds its symbol"
        )
        listed.append(
            {
                "client_order_id": order["client_order_id"],
                "order_id": order["order_id"],
                "account": order["account"],
                "symbol": symbol,
                "status": order["status"],
                "last_seq": last_seq,
                "restored_seq": restored,
                "why": why,
            }
        )
    return present, sorted(listed, key=lambda o: (o["symbol"], o["last_seq"], o["client_order_id"]))


def trades_beyond(conn: psycopg.Connection[Any], seq: int) -> list[dict[str, Any]]:
    """Ledger trades with a node sequence beyond ``seq``, with both sides' client order ids."""
    rows = conn.execute(
        "SELECT execution_id, symbol, node_seq, buy_account, buy_client_order_id, sell_account,"
        " sell_client_order_id FROM trades WHERE node_seq > %s ORDER BY node_seq, execution_id",
        (seq,),
    ).fetchall()
    keys = (
        "execution_id",
        "symbol",
        "node_seq",
        "buy_account",
        "buy_client_order_id",
        "sell_account",
        "sell_client_order_id",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


_CHECKSUM = (
    "SELECT count(*), encode(sha256(convert_to(coalesce(string_agg(execution_id || ':' || node_seq"
    " || ':' || symbol || ':' || price::text || ':' || quantity, ',' ORDER BY execution_id), ''),"
    " 'UTF8')), 'hex') FROM trades"
)


def ledger_checksum(conn: psycopg.Connection[Any], up_to_seq: int | None) -> tuple[int, str]:
    """(trades, SHA-256 over every trade's id, seq, symbol, price and quantity in id order)."""
    if up_to_seq is None:
        row = conn.execute(_CHECKSUM).fetchone()
    else:
        row = conn.execute(_CHECKSUM + " WHERE node_seq <= %s", (up_to_seq,)).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, "")
