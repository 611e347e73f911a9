"""Reference data kept briefly in the warm function: read once per TTL, changed at once by a halt
made through the function, never kept when the TTL is 0."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orders_api.dal.cached_reference import CachedReferencePrices, CachedReferenceStore
from orders_api.dal.interfaces import OrderReference, RiskLimits, TapeTrade, TradingControl


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingReference:
    """The reference tables, counting reads."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.halted = False

    def principal(self, keys: list[str]) -> dict[str, Any] | None:
        self.reads.append("principal")
        return {"user_type": "trader", "account": "A"} if keys[0] == "alice" else None

    def risk_limits(self, account: str) -> RiskLimits | None:
        self.reads.append("limits")
        return None

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        self.reads.append("controls")
        return TradingControl("GLOBAL", halted=self.halted), TradingControl(symbol)

    def for_order(self, account: str, symbol: str) -> OrderReference:
        self.reads.append("for_order")
        return OrderReference(None, TradingControl("GLOBAL", halted=self.halted), TradingControl(symbol))

    def is_fresh(self, account: str, symbol: str) -> bool:
        return False

    def set_halted(self, scope: str, halted: bool, actor: str, reason: str, at: datetime) -> TradingControl:
        self.halted = halted
        return TradingControl("GLOBAL", halted=halted, actor=actor)


def test_each_piece_is_read_once_per_ttl() -> None:
    inner, clock = CountingReference(), Clock()
    cache = CachedReferenceStore(inner, 1.0, clock)  # type: ignore[arg-type]
    assert cache.principal(["alice"]) == cache.principal(["alice"])
    assert cache.principal(["mallory"]) is None
    assert cache.principal(["mallory"]) is None  # an unknown identity is remembered too
    assert not cache.is_fresh("A", "AAPL")
    cache.for_order("A", "AAPL")
    assert cache.is_fresh("A", "AAPL")
    cache.for_order("A", "AAPL")
    assert inner.reads == ["principal", "principal", "for_order"]
    clock.now += 1.0
    assert not cache.is_fresh("A", "AAPL")
    cache.for_order("A", "AAPL")
    cache.principal(["alice"])
    assert inner.reads[-2:] == ["for_order", "principal"]


def test_a_halt_made_here_is_seen_here_at_once() -> None:
    inner, clock = CountingReference(), Clock()
    cache = CachedReferenceStore(inner, 60.0, clock)  # type: ignore[arg-type]
    assert not cache.for_order("A", "AAPL").global_control.halted
    cache.set_halted("GLOBAL", True, "olga", "news", datetime.now(UTC))
    assert cache.for_order("A", "AAPL").global_control.halted
    assert inner.reads == ["for_order"]


def test_a_ttl_of_zero_keeps_nothing() -> None:
    inner = CountingReference()
    cache = CachedReferenceStore(inner, 0.0, Clock())  # type: ignore[arg-type]
    cache.for_order("A", "AAPL")
    cache.for_order("A", "AAPL")
    assert inner.reads == ["for_order", "for_order"]


class Tape:
    def __init__(self) -> None:
        self.reads = 0
        self.price = Decimal("190.00")

    def book(self, symbol: str) -> None:
        return None

    def last_trades(self, symbol: str, limit: int) -> list[TapeTrade]:
        self.reads += 1
        return [TapeTrade(self.price, 1, "n1-1", "")]


def test_the_reference_price_is_the_last_trade_kept_for_the_ttl() -> None:
    tape, clock = Tape(), Clock()
    prices = CachedReferencePrices(tape, 1.0, clock)
    assert prices.last_price("AAPL") == Decimal("190.00")
    tape.price = Decimal("191.00")
    assert prices.last_price("AAPL") == Decimal("190.00")
    clock.now += 1.5
    assert prices.last_price("AAPL") == Decimal("191.00")
    assert tape.reads == 2
