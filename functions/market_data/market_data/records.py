"""Decoding the matching nodes' market-data records (``meridian_hotpath.marketdata``).

Each Kinesis record is one JSON object with integer price units::

    {"type": "trade", "symbol", "seq", "trade_id", "price", "quantity", "aggressor_side", "timestamp_ns"}
    {"type": "top_of_book", "symbol", "seq", "bid_price", "bid_quantity", "ask_price", "ask_quantity",
     "timestamp_ns"}

Optional fields: ``price_scale`` (else the instrument's), ``execution_id`` (else ``trade_id``),
``bids``/``asks`` depth as ``[[price, quantity], ...]`` (else the top level alone). A price of 0
means an empty side.

The stream also carries ``trade.executed.v1`` lifecycle events (an EventBridge rule puts them
there, durable even when a node's in-memory publisher lost its queue). They become the same tape
print as the node's own record: ``node_seq`` is the sequence number and the trade id is the
suffix of the order API's execution id ``<node>-<trade_id>``, so both land on one item.
Anything else is a poison record, rejected with its reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from meridian.consumers import PoisonMessageError
from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.events import TradeExecuted

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

PRICE_SCALES: dict[str, int] = {i.symbol: i.price_scale for i in DEFAULT_INSTRUMENTS}
_SIDES = {1: "BUY", 2: "SELL", "BUY": "BUY", "SELL": "SELL"}
Levels = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class TradePrint:
    symbol: str
    seq: int
    trade_id: int
    execution_id: str
    price: int
    quantity: int
    aggressor_side: str
    timestamp_ns: int
    price_scale: int
    from_event: bool = False  # carries the ledger's execution id


@dataclass(frozen=True, slots=True)
class BookTop:
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


def decode(data: bytes) -> TradePrint | BookTop:
    """One market-data record; raises PoisonMessageError when it is not one."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise PoisonMessageError(f"record is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PoisonMessageError("record is not a JSON object")
    if "detail-type" in payload:
        return _from_event(payload)
    symbol = payload.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise PoisonMessageError(f"record has no symbol: {symbol!r}")
    kind = payload.get("type")
    if kind == "top_of_book":
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
    if kind == "trade":
        trade_id = _int(payload, "trade_id")
        side = _SIDES.get(payload.get("aggressor_side"))
        if side is None:
            raise PoisonMessageError(
                f"aggressor_side must be 1/2 or BUY/SELL, got {payload.get('aggressor_side')!r}"
            )
        execution_id = payload.get("execution_id", str(trade_id))
        if not isinstance(execution_id, str) or not execution_id:
            raise PoisonMessageError("execution_id must be a non-empty string")
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
        )
    raise PoisonMessageError(f"unknown record type {kind!r}")


def _from_event(envelope: dict[str, Any]) -> TradePrint:
    if envelope["detail-type"] != TradeExecuted.detail_type:
        raise PoisonMessageError(f"lifecycle event {envelope['detail-type']!r} does not belong on the stream")
    try:
        trade = TradeExecuted.model_validate(envelope.get("detail"))
    except ValidationError as exc:
        raise PoisonMessageError(
            f"trade.executed.v1 failed its schema: {exc.error_count()} error(s)"
        ) from None
    prefix, _, suffix = trade.execution_id.rpartition("-")
    trade_id = int(suffix) if prefix and suffix.isdigit() else _stable_id(trade.execution_id)
    scale = PRICE_SCALES.get(trade.symbol, max(0, -int(trade.price.as_tuple().exponent)))
    units = trade.price.scaleb(scale)
    if units != units.to_integral_value():
        raise PoisonMessageError(f"price {trade.price} has more than {scale} decimal places")
    at_us = (trade.occurred_at - _EPOCH) // _MICROSECOND
    return TradePrint(
        trade.symbol,
        trade.node_seq,
        trade_id,
        trade.execution_id,
        int(units),
        trade.quantity,
        trade.aggressor_side,
        at_us * 1000,
        scale,
        from_event=True,
    )


def _stable_id(execution_id: str) -> int:
    """A trade id for an execution id not of the ``<node>-<n>`` form (stable across retries)."""
    return int.from_bytes(hashlib.blake2b(execution_id.encode(), digest_size=8).digest(), "big")
