"""Decoding the matching nodes' market-data records (``meridian_hotpath.marketdata``).

Each update is one JSON object with integer price units; a Kinesis record holds one, or many of
one symbol in the KPL aggregation format (``decode_all`` reads both)::

    {"type": "trade", "symbol", "seq", "trade_id", "price", "quantity", "aggressor_side", "timestamp_ns"}
    {"type": "book", "symbol", "seq", "book_seq", "levels", "bids": [[price, quantity], ...], "asks",
     "timestamp_ns"}
    {"type": "top_of_book", "symbol", "seq", "bid_price", "bid_quantity", "ask_price", "ask_quantity",
     "timestamp_ns"}

A ``book`` update is the node's depth (its best ``levels`` levels a side, best first); the older
``top_of_book`` shape is still read, as a book of one level.

Optional fields: ``price_scale`` (else the instrument's), ``execution_id`` (else the fleet-wide
``meridian.executions.execution_id`` of ``trade_id``), ``resent`` on a trade (``true``: a node
re-sent it after a restart; the tape keeps a copy it already has),
``bids``/``asks`` depth as ``[[price, quantity], ...]`` (else the top level alone). A price of 0
means an empty side.

The nodes are the stream's only writers: nothing else (no EventBridge rule) puts records on it.
Anything else, a lifecycle event included, is a poison record, rejected with its reason.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from orjson import loads  # ~3x the standard library on these small objects

from meridian.consumers import PoisonMessageError
from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.executions import execution_id as execution_id_of
from meridian.kpl import AggregationError, user_records

PRICE_SCALES: dict[str, int] = {i.symbol: i.price_scale for i in DEFAULT_INSTRUMENTS}
_SIDES = {1: "BUY", 2: "SELL", "BUY": "BUY", "SELL": "SELL"}
Levels = tuple[tuple[int, int], ...]


class TradePrint(NamedTuple):
    symbol: str
    seq: int
    trade_id: int
    execution_id: str
    price: int
    quantity: int
    aggressor_side: str
    timestamp_ns: int
    price_scale: int
    resent: bool = False  # re-sent by a restarted node: written only where the tape lacks it


class BookTop(NamedTuple):
    symbol: str
    seq: int
    bid_price: int
    bid_quantity: int
    ask_price: int
    ask_quantity: int
    bids: Levels
    asks: Levels
    timestamp_ns: int
    price_scale: int
    book_seq: int = 0  # the symbol's book update number (``book`` records; 0 for ``top_of_book``)
    node: int | None = None  # the node number whose book it is (None: a record that does not say)
    halted: bool = False  # the symbol is halted on that node (a move hands a symbol over halted)


def _int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int or value < 0:
        raise PoisonMessageError(f"field {name!r} must be a non-negative integer, got {value!r}")
    return value


def _scale(payload: dict[str, Any], symbol: str) -> int:
    scale = payload.get("price_scale")
    if scale is None:
        scale = PRICE_SCALES.get(symbol)
        if scale is None:
            raise PoisonMessageError(f"unknown instrument {symbol!r} and no price_scale in the record")
    if type(scale) is not int or not 0 <= scale <= 12:
        raise PoisonMessageError(f"price_scale must be an integer 0-12, got {scale!r}")
    return scale


def _levels(payload: dict[str, Any], name: str, top: tuple[int, int]) -> Levels:
    raw = payload.get(name)
    if raw is None:
        return (top,) if top[0] else ()
    if not isinstance(raw, list) or not all(
        isinstance(level, list) and len(level) == 2 and all(type(x) is int and x >= 0 for x in level)
        for level in raw
    ):
        raise PoisonMessageError(f"{name} must be a list of [price, quantity] integer pairs")
    return tuple((level[0], level[1]) for level in raw)


def decode_all(data: bytes) -> list[TradePrint | BookTop]:
    """Every update in one Kinesis record's data: one when it is plain, many when the node
    aggregated them (``meridian.kpl``); raises PoisonMessageError unless every one decodes."""
    try:
        parts = user_records(data)
    except AggregationError as exc:
        raise PoisonMessageError(exc.reason) from None
    return [decode(part) for part in parts]


def decode(data: bytes) -> TradePrint | BookTop:
    """One market-data record; raises PoisonMessageError when it is not one.

    The common shapes take a fast path of plain type checks; anything unusual (depth levels, a bad
    field) goes through the field-by-field checks, which also name what is wrong.
    """
    try:
        payload = loads(data)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
        raise PoisonMessageError(f"record is not JSON: {exc}") from None
    if type(payload) is not dict:
        raise PoisonMessageError("record is not a JSON object")
    kind = payload.get("type")
    symbol = payload.get("symbol")
    scale = payload.get("price_scale")
    if scale is None:
        scale = PRICE_SCALES.get(symbol)  # type: ignore[arg-type]
    if kind == "top_of_book":
        seq, ts = payload.get("seq"), payload.get("timestamp_ns")
        bp, bq = payload.get("bid_price"), payload.get("bid_quantity")
        ap, aq = payload.get("ask_price"), payload.get("ask_quantity")
        if (
            type(symbol) is str and symbol and type(scale) is int and 0 <= scale <= 12
            and type(seq) is int and type(ts) is int and type(bp) is int and type(bq) is int
            and type(ap) is int and type(aq) is int and min(seq, ts, bp, bq, ap, aq) >= 0
            and "bids" not in payload and "asks" not in payload
        ):  # fmt: skip
            return BookTop(
                symbol, seq, bp, bq, ap, aq, ((bp, bq),) if bp else (), ((ap, aq),) if ap else (), ts, scale
            )
        return _checked_book(payload)
    if kind == "book":
        return _checked_depth(payload)
    if kind == "trade":
        seq, ts, tid = payload.get("seq"), payload.get("timestamp_ns"), payload.get("trade_id")
        price, quantity = payload.get("price"), payload.get("quantity")
        side = _SIDES.get(payload.get("aggressor_side"))
        resent = payload.get("resent", False)
        if (
            type(symbol) is str and symbol and type(scale) is int and 0 <= scale <= 12 and side
            and type(seq) is int and type(ts) is int and type(tid) is int and type(price) is int
            and type(quantity) is int and min(seq, ts, tid, price, quantity) >= 0
            and "execution_id" not in payload and type(resent) is bool
        ):  # fmt: skip
            return TradePrint(
                symbol, seq, tid, execution_id_of(tid), price, quantity, side, ts, scale, resent
            )
        return _checked_trade(payload)
    raise PoisonMessageError(f"unknown record type {kind!r}")


def _symbol(payload: dict[str, Any]) -> str:
    symbol = payload.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise PoisonMessageError(f"record has no symbol: {symbol!r}")
    return symbol


def _checked_book(payload: dict[str, Any]) -> BookTop:
    symbol = _symbol(payload)
    bid = (_int(payload, "bid_price"), _int(payload, "bid_quantity"))
    ask = (_int(payload, "ask_price"), _int(payload, "ask_quantity"))
    return BookTop(
        symbol,
        _int(payload, "seq"),
        bid[0],
        bid[1],
        ask[0],
        ask[1],
        _levels(payload, "bids", bid),
        _levels(payload, "asks", ask),
        _int(payload, "timestamp_ns"),
        _scale(payload, symbol),
    )


def _checked_depth(payload: dict[str, Any]) -> BookTop:
    symbol = _symbol(payload)
    bids = _levels(payload, "bids", (0, 0))
    asks = _levels(payload, "asks", (0, 0))
    if "bids" not in payload or "asks" not in payload:
        raise PoisonMessageError("a book record needs bids and asks")
    bid, ask = (bids[0] if bids else (0, 0)), (asks[0] if asks else (0, 0))
    return BookTop(
        symbol,
        _int(payload, "seq"),
        bid[0],
        bid[1],
        ask[0],
        ask[1],
        bids,
        asks,
        _int(payload, "timestamp_ns"),
        _scale(payload, symbol),
        _int(payload, "book_seq"),
        _int(payload, "node") if "node" in payload else None,
        _bool(payload, "halted"),
    )


def _bool(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if type(value) is not bool:
        raise PoisonMessageError(f"{name} must be true or false, got {value!r}")
    return value


def _checked_trade(payload: dict[str, Any]) -> TradePrint:
    symbol = _symbol(payload)
    trade_id = _int(payload, "trade_id")
    side = _SIDES.get(payload.get("aggressor_side"))
    if side is None:
        raise PoisonMessageError(
            f"aggressor_side must be 1/2 or BUY/SELL, got {payload.get('aggressor_side')!r}"
        )
    execution_id = payload.get("execution_id", execution_id_of(trade_id))
    if not isinstance(execution_id, str) or not execution_id:
        raise PoisonMessageError("execution_id must be a non-empty string")
    resent = payload.get("resent", False)
    if type(resent) is not bool:
        raise PoisonMessageError(f"resent must be true or false, got {resent!r}")
    return TradePrint(
        symbol,
        _int(payload, "seq"),
        trade_id,
        execution_id,
        _int(payload, "price"),
        _int(payload, "quantity"),
        side,
        _int(payload, "timestamp_ns"),
        _scale(payload, symbol),
        resent,
    )
