"""Reference data kept in the warm function for a short time (``REFERENCE_TTL_SECONDS``, default 1 s).

Principals, risk limits and trading controls change rarely and are read by every request; reading
them on every request is most of an order's AWS round trips. Each piece is kept for the TTL after
it was read, so a change reaches every warm function within the TTL. A halt is no weaker for it:
the matching node refuses orders of a halted symbol itself (the halt route tells the node before
it answers), so a cached control can only be briefly permissive at the API, never at the node. A
halt or resume made through this function updates its own copy at once.

The symbol's last trade, the reference price of the price band and of a market order's value, is
kept as briefly (``CachedReferencePrices``): it comes from the MarketData table, which follows the
node through the market-data pipeline and so is never newer than the node's own last price, and
the node checks the band itself (against its own last price) before it accepts an order or a
change. ``GET /marketdata`` reads the table, never this copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from orders_api.dal.dynamo_reference import GLOBAL_SCOPE, DynamoReferenceStore
from orders_api.dal.interfaces import MarketDataReader, OrderReference, RiskLimits, TradingControl

T = TypeVar("T")
_MISSING = object()


class CachedReferenceStore:
    def __init__(
        self, inner: DynamoReferenceStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def _get(self, kind: str, key: str) -> Any:
        entry = self._entries.get((kind, key))
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return _MISSING
        return entry[1]

    def _put(self, kind: str, key: str, value: T) -> T:
        if self._ttl > 0:
            self._entries[(kind, key)] = (self._clock(), value)
        return value

    def principal(self, keys: list[str]) -> Mapping[str, Any] | None:
        key = "\n".join(keys)
        found = self._get("principal", key)
        if found is _MISSING:
            found = self._put("principal", key, self._inner.principal(keys))
        return found  # type: ignore[no-any-return]

    def risk_limits(self, account: str) -> RiskLimits | None:
        found = self._get("limits", account)
        if found is _MISSING:
            found = self._put("limits", account, self._inner.risk_limits(account))
        return found  # type: ignore[no-any-return]

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        global_control, symbol_control = self._get("control", GLOBAL_SCOPE), self._get("control", symbol)
        if global_control is _MISSING or symbol_control is _MISSING:
            global_control, symbol_control = self._inner.controls(symbol)
            self._put("control", GLOBAL_SCOPE, global_control)
            self._put("control", symbol, symbol_control)
        return global_control, symbol_control

    def is_fresh(self, account: str, symbol: str) -> bool:
        """Whether ``for_order`` would answer without reading the tables."""
        return all(
            self._get(kind, key) is not _MISSING
            for kind, key in (("limits", account), ("control", GLOBAL_SCOPE), ("control", symbol))
        )

    def for_order(self, account: str, symbol: str) -> OrderReference:
        if self.is_fresh(account, symbol):
            return OrderReference(
                self._get("limits", account), self._get("control", GLOBAL_SCOPE), self._get("control", symbol)
            )
        reference = self._inner.for_order(account, symbol)
        self._put("limits", account, reference.limits)
        self._put("control", GLOBAL_SCOPE, reference.global_control)
        self._put("control", symbol, reference.symbol_control)
        return reference

    def set_halted(self, scope: str, halted: bool, actor: str, reason: str, at: datetime) -> TradingControl:
        control = self._inner.set_halted(scope, halted, actor, reason, at)
        self._put("control", control.scope, control)  # "GLOBAL" or the symbol
        return control


class CachedReferencePrices:
    """The last trade price of each symbol, kept for the TTL after it was read."""

    def __init__(
        self, market_data: MarketDataReader, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._market_data = market_data
        self._ttl = ttl_seconds
        self._clock = clock
        self._prices: dict[str, tuple[float, Decimal | None]] = {}

    def is_fresh(self, symbol: str) -> bool:
        entry = self._prices.get(symbol)
        return entry is not None and self._clock() - entry[0] < self._ttl

    def last_price(self, symbol: str) -> Decimal | None:
        entry = self._prices.get(symbol)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            return entry[1]
        tape = self._market_data.last_trades(symbol, 1)
        price = tape[0].price if tape else None
        if self._ttl > 0:
            self._prices[symbol] = (self._clock(), price)
        return price
