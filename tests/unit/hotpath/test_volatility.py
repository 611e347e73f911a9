"""Realized volatility: recovers a known volatility, decays in a quiet market, scales on the max."""

from __future__ import annotations

import math
import random

import pytest

from meridian_hotpath.volatility import TRADING_SECONDS_PER_YEAR, VolatilityTracker


def random_walk(
    tracker: VolatilityTracker, annual: float, seconds: int, seed: int, symbol: str = "AAPL"
) -> None:
    """Sample once a second a price path whose true annualised volatility is ``annual``."""
    rng = random.Random(seed)
    per_second = annual / math.sqrt(TRADING_SECONDS_PER_YEAR)
    log_price = math.log(1_900_000)
    for second in range(seconds):
        tracker.sample(float(second), {symbol: round(math.exp(log_price))})
        log_price += rng.gauss(0.0, per_second)


@pytest.mark.parametrize("annual", [0.15, 0.40, 0.90])
def test_recovers_the_volatility_of_a_random_walk(annual: float) -> None:
    tracker = VolatilityTracker(half_life=600)
    random_walk(tracker, annual, seconds=7200, seed=3)
    assert tracker.annualised_percent("AAPL") == pytest.approx(annual * 100, rel=0.15)


def test_a_quiet_market_decays_by_the_half_life() -> None:
    tracker = VolatilityTracker(half_life=100)
    random_walk(tracker, 0.5, seconds=3000, seed=5)
    busy = tracker.annualised_percent("AAPL")
    quiet = {"AAPL": tracker._symbols["AAPL"].price}  # no trade since: the last price stays
    for second in range(3000, 3100):  # one half-life: the variance halves, volatility / sqrt 2
        tracker.sample(float(second), quiet)
    last = tracker.annualised_percent("AAPL")
    assert last == pytest.approx(busy / math.sqrt(2), rel=1e-9)


def test_nothing_is_known_before_two_samples() -> None:
    tracker = VolatilityTracker()
    assert tracker.market_volatility() == 0.0
    tracker.sample(0.0, {"AAPL": 19000})
    assert tracker.annualised_percent("AAPL") == 0.0
    assert tracker.annualised_percent("MSFT") == 0.0
    tracker.sample(1.0, {"AAPL": 19019})
    expected = 100 * abs(math.log(19019 / 19000)) * math.sqrt(TRADING_SECONDS_PER_YEAR)
    assert tracker.annualised_percent("AAPL") == pytest.approx(expected)


def test_a_sample_that_does_not_advance_the_clock_changes_nothing() -> None:
    tracker = VolatilityTracker()
    tracker.sample(0.0, {"AAPL": 19000})
    tracker.sample(1.0, {"AAPL": 19019})
    before = tracker.annualised_percent("AAPL")
    tracker.sample(1.0, {"AAPL": 25000})
    assert tracker.annualised_percent("AAPL") == before


def test_market_volatility_is_the_largest_symbol() -> None:
    tracker = VolatilityTracker(half_life=600)
    random_walk(tracker, 0.2, seconds=3600, seed=1, symbol="AAPL")
    random_walk(tracker, 0.8, seconds=3600, seed=2, symbol="MSFT")
    assert tracker.market_volatility() == tracker.annualised_percent("MSFT")
    assert tracker.annualised_percent("MSFT") > 2 * tracker.annualised_percent("AAPL")


def test_half_life_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        VolatilityTracker(half_life=0)


def test_a_symbol_missing_from_samples_measures_its_next_return_over_the_whole_gap() -> None:
    tracker = VolatilityTracker()
    tracker.sample(0.0, {"AAPL": 100.0, "MSFT": 200.0})
    for second in range(1, 10):  # MSFT's book is one-sided: no mid to sample
        tracker.sample(float(second), {"AAPL": 100.0})
    assert tracker.annualised_percent("MSFT") == 0.0  # nothing known yet, not a guess
    tracker.sample(10.0, {"AAPL": 100.0, "MSFT": 202.0})
    per_second = math.log(202 / 200) ** 2 / 10  # one return spanning ten seconds
    assert tracker.annualised_percent("MSFT") == pytest.approx(
        100 * math.sqrt(per_second * TRADING_SECONDS_PER_YEAR)
    )
