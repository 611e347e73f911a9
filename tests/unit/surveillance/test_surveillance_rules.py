"""The compliance rules as plain functions."""

from __future__ import annotations

from decimal import Decimal

from surveillance.rules import (
    ActivityCounts,
    RatioLimits,
    cancel_ratio,
    linked_groups,
    order_to_trade_ratio,
    price_band,
    wash_trade,
)

from meridian.domain import DEFAULT_INSTRUMENTS
from tests.pipeline_factories import BASE_TIME, trade

INSTRUMENTS = {i.symbol: i for i in DEFAULT_INSTRUMENTS}
LIMITS = RatioLimits(
    window_s=60,
    max_order_to_trade=Decimal(10),
    min_order_messages=20,
    max_cancel_ratio=Decimal("0.8"),
    min_new_orders=10,
)


def test_a_self_trade_is_a_wash_trade() -> None:
    finding = wash_trade(trade("x1", buyer="W", seller="W"), {})
    assert finding is not None
    assert (finding.rule, finding.severity, finding.account, finding.details["kind"]) == (
        "wash_trade",
        "HIGH",
        "W",
        "self",
    )
    assert finding.finding_id == "wash_trade:x1"


def test_linked_accounts_trading_together_is_a_wash_trade() -> None:
    linked = linked_groups([["A", "B"], ["B", "C"], ["X", "Y"]])
    assert linked["A"] == frozenset({"A", "B", "C"})
    found = wash_trade(trade("x2", buyer="C", seller="A"), linked)
    assert found is not None
    assert found.details["kind"] == "linked"
    assert wash_trade(trade("x3", buyer="A", seller="X"), linked) is None
    assert wash_trade(trade("x4", buyer="A", seller="Z"), {}) is None


def test_price_band_uses_the_instrument_reference() -> None:
    # AAPL: reference 190.00, band 10% -> 171.00 .. 209.00 inclusive
    assert price_band(trade("p1", price="209.00"), INSTRUMENTS) is None
    assert price_band(trade("p2", price="171.00"), INSTRUMENTS) is None
    high = price_band(trade("p3", price="209.01"), INSTRUMENTS)
    assert high is not None
    assert (high.details["low"], high.details["high"]) == ("171.00", "209.00")
    assert price_band(trade("p4", price="170.99"), INSTRUMENTS) is not None
    assert price_band(trade("p5", symbol="NEWCO", price="1"), INSTRUMENTS) is None


def test_order_to_trade_ratio_needs_enough_messages_and_a_high_ratio() -> None:
    def otr(counts: ActivityCounts) -> object:
        return order_to_trade_ratio("A", counts, LIMITS, "e1", BASE_TIME)

    assert otr(ActivityCounts(new_orders=19)) is None  # too little activity to judge
    assert otr(ActivityCounts(new_orders=20, trades=2)) is None  # 10:1 is the limit itself
    finding = order_to_trade_ratio(
        "A", ActivityCounts(new_orders=15, replaces=5, cancels=3, trades=2), LIMITS, "e1", BASE_TIME
    )
    assert finding is not None
    assert finding.details["ratio"] == "11.50"
    assert finding.finding_id == f"order_to_trade_ratio:A:{int(BASE_TIME.timestamp()) // 60}"
    no_trades = order_to_trade_ratio("A", ActivityCounts(new_orders=25), LIMITS, "e1", BASE_TIME)
    assert no_trades is not None


def test_cancel_ratio() -> None:
    assert cancel_ratio("A", ActivityCounts(new_orders=9, cancels=9), LIMITS, "e", BASE_TIME) is None
    assert cancel_ratio("A", ActivityCounts(new_orders=10, cancels=8), LIMITS, "e", BASE_TIME) is None
    finding = cancel_ratio("A", ActivityCounts(new_orders=10, cancels=9), LIMITS, "e", BASE_TIME)
    assert finding is not None
    assert (finding.rule, finding.severity, finding.details["ratio"]) == ("cancel_ratio", "LOW", "0.90")
