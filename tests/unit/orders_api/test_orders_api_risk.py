"""Pre-trade risk as plain logic: each per-order limit, the band, halts, restrictions and approval
routing. The limits on what an account holds open are the exposure reservation's
(tests/unit/shared/test_exposure.py, and the concurrency test in test_orders_api_exposure.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from orders_api import risk
from orders_api.dal.interfaces import RiskLimits, TradingControl
from orders_api.errors import OrderRefusedError

from meridian.domain import DEFAULT_INSTRUMENTS

AAPL = DEFAULT_INSTRUMENTS[0]
LIMITS = RiskLimits(
    max_order_quantity=1000, max_notional=Decimal(100_000), max_open_orders=3, position_limits={"AAPL": 500}
)


def inputs(**changes: object) -> risk.RiskInputs:
    base: dict[str, object] = {
        "limits": LIMITS,
        "last_trade_ticks": None,
        "global_control": TradingControl("GLOBAL"),
        "symbol_control": TradingControl("AAPL"),
        "large_order_notional": Decimal(50_000),
    }
    base.update(changes)
    return risk.RiskInputs(**base)  # type: ignore[arg-type]


def intent(quantity: int = 10, price: int | None = 19000, side: str = "BUY") -> risk.OrderIntent:
    return risk.OrderIntent("ACC-A", "AAPL", side, quantity, price)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order", "changes", "reason"),
    [
        (intent(), {"global_control": TradingControl("GLOBAL", halted=True)}, "TRADING_HALTED"),
        (intent(), {"symbol_control": TradingControl("AAPL", halted=True)}, "TRADING_HALTED"),
        (intent(), {"symbol_control": TradingControl("AAPL", restricted=True)}, "RESTRICTED_SYMBOL"),
        (intent(quantity=1001), {}, "MAX_ORDER_QUANTITY"),
        (intent(quantity=600), {}, "MAX_NOTIONAL"),
        (intent(price=21000), {}, "PRICE_BAND"),
        (intent(price=19000), {"last_trade_ticks": 15000}, "PRICE_BAND"),
    ],
)
def test_each_rule_rejects_with_its_reason(
    order: risk.OrderIntent, changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(OrderRefusedError) as refused:
        risk.check(order, AAPL, inputs(**changes))
    assert refused.value.code == reason
    assert refused.value.status == 422


def test_an_ordinary_order_goes_to_matching() -> None:
    decision = risk.check(intent(), AAPL, inputs())
    assert decision.route is risk.Route.MATCHING
    assert decision.notional == Decimal("1900.00")


def test_large_notional_and_approval_symbols_go_to_compliance() -> None:
    assert risk.check(intent(quantity=300), AAPL, inputs()).route is risk.Route.APPROVAL
    restricted = inputs(symbol_control=TradingControl("AAPL", approval_required=True))
    assert risk.check(intent(), AAPL, restricted).route is risk.Route.APPROVAL


def test_market_orders_are_valued_at_the_last_trade() -> None:
    decision = risk.check(intent(quantity=10, price=None), AAPL, inputs(last_trade_ticks=20000))
    assert decision.notional == Decimal("2000.00")
    assert risk.check(intent(quantity=10, price=None), AAPL, inputs()).notional == Decimal("1900.00")


@pytest.mark.parametrize("breach", ["MAX_OPEN_ORDERS", "POSITION_LIMIT", "MAX_NOTIONAL"])
def test_an_exposure_breach_is_refused_with_its_reason(breach: str) -> None:
    refused = risk.exposure_refused(breach, "why")  # type: ignore[arg-type]
    assert (refused.code, refused.status, refused.message) == (breach, 422, "why")
