"""Realized market volatility per symbol, the signal the node fleet scales on.

Every ``interval`` seconds the node samples each symbol's mid price (the middle of its best bid and
offer; a one-sided book gives no sample). The log return between two samples of a symbol, squared
and divided by the time between them, estimates the per-second variance; an exponentially weighted
mean of those estimates (half-life ``half_life`` seconds, weighted by
elapsed time, so a late sample counts for the time it covers) tracks the current variance.
Annualised over a trading year of 252 sessions of 6.5 hours and given in percent, it is the
``meridian_market_volatility`` gauge (the largest over the node's symbols), which the CloudWatch
bridge publishes as ``MarketVolatility`` for the scaling alarms.

A symbol whose mid has not moved since the last sample contributes a zero return for that interval,
so a quiet market's volatility decays towards zero instead of freezing at its last busy value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
DEFAULT_HALF_LIFE = 300.0
DEFAULT_INTERVAL = 1.0


@dataclass(slots=True)
class _SymbolState:
    price: float
    at: float  # when ``price`` was sampled
    variance_per_second: float = 0.0
    warm: bool = False


class VolatilityTracker:
    def __init__(self, half_life: float = DEFAULT_HALF_LIFE) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.half_life = half_life
        self._symbols: dict[str, _SymbolState] = {}

    def sample(self, now: float, prices: Mapping[str, float]) -> None:
        """Take one sample at monotonic time ``now`` of each symbol's price (> 0). A symbol left out
        (no price to sample) keeps its estimate; its next return spans the whole gap."""
        for symbol, price in prices.items():
            state = self._symbols.get(symbol)
            if state is None:
                self._symbols[symbol] = _SymbolState(price, now)
                continue
            elapsed = now - state.at
            if elapsed <= 0:
                continue
            log_return = math.log(price / state.price)
            estimate = log_return * log_return / elapsed
            if state.warm:
                keep = 0.5 ** (elapsed / self.half_life)
                state.variance_per_second = keep * state.variance_per_second + (1 - keep) * estimate
            else:
                state.variance_per_second, state.warm = estimate, True
            state.price, state.at = price, now

    def annualised_percent(self, symbol: str) -> float:
        state = self._symbols.get(symbol)
        if state is None or not state.warm:
            return 0.0
        return 100.0 * math.sqrt(state.variance_per_second * TRADING_SECONDS_PER_YEAR)

    def market_volatility(self) -> float:
        """The largest annualised volatility (percent) over the symbols: what scaling acts on."""
        return max((self.annualised_percent(symbol) for symbol in self._symbols), default=0.0)
