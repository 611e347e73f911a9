"""Compliance rules as plain functions: an event (and, for windowed rules, counts) in, a finding out.

* ``wash_trade``: both sides of a trade belong to one account, or to accounts known to act together
  (pre-arranged trading between linked accounts).
* ``price_band``: a trade printed outside the instrument's band around its reference price.
* ``order_to_trade_ratio`` and ``cancel_ratio``: an account's order messages per trade, and its
  cancels per new order, over a sliding window, above their limits (with a minimum activity, so a
  quiet account's first cancel is not a finding).

A finding's id is deterministic (the rule and what it is about), so a redelivered event can never
raise a second finding; windowed findings are keyed by account and window, one per window at most.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from meridian.domain import Instrument
from meridian.events import TradeExecuted

Severity = Literal["LOW", "MEDIUM", "HIGH"]


@dataclass(frozen=True, slots=True)
class Finding:
    finding_id: str
    rule: str
    severity: Severity
    account: str
    symbol: str | None
    event_id: str
    occurred_at: datetime
    summary: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActivityCounts:
    """One account's activity inside a window."""

    new_orders: int = 0
    replaces: int = 0
    cancels: int = 0
    trades: int = 0

    @property
    def order_messages(self) -> int:
        return self.new_orders + self.replaces + self.cancels


@dataclass(frozen=True, slots=True)
class RatioLimits:
    window_s: int = 300
    max_order_to_trade: Decimal = Decimal(20)
    min_order_messages: int = 50
    max_cancel_ratio: Decimal = Decimal("0.9")
    min_new_orders: int = 20


def linked_groups(groups: Iterable[Iterable[str]]) -> dict[str, frozenset[str]]:
    """Account -> every account linked to it (groups sharing an account merge)."""
    index: dict[str, frozenset[str]] = {}
    for group in groups:
        members = frozenset(group)
        for account in list(members):
            members |= index.get(account, frozenset())
        for account in members:
            index[account] = members
    return index


def wash_trade(trade: TradeExecuted, linked: Mapping[str, frozenset[str]]) -> Finding | None:
    buyer, seller = trade.buy_account, trade.sell_account
    if buyer == seller:
        kind, summary = "self", f"{buyer} traded with itself"
    elif seller in linked.get(buyer, frozenset()):
        kind, summary = "linked", f"linked accounts {buyer} and {seller} traded with each other"
    else:
        return None
    return Finding(
        finding_id=f"wash_trade:{trade.execution_id}",
        rule="wash_trade",
        severity="HIGH",
        account=buyer,
        symbol=trade.symbol,
        event_id=trade.event_id,
        occurred_at=trade.occurred_at,
        summary=f"{summary}: {trade.quantity} {trade.symbol} @ {trade.price}",
        details={
            "kind": kind,
            "execution_id": trade.execution_id,
            "buy_account": buyer,
            "sell_account": seller,
            "buy_order_id": trade.buy_order_id,
            "sell_order_id": trade.sell_order_id,
        },
    )


def price_band(trade: TradeExecuted, instruments: Mapping[str, Instrument]) -> Finding | None:
    instrument = instruments.get(trade.symbol)
    if instrument is None or instrument.reference_price <= 0 or instrument.band_bps == 0:
        return None
    low, high = (instrument.to_price(units) for units in instrument.band(instrument.reference_price))
    if low <= trade.price <= high:
        return None
    return Finding(
        finding_id=f"price_band:{trade.execution_id}",
        rule="price_band",
        severity="MEDIUM",
        account=trade.buy_account if trade.aggressor_side == "BUY" else trade.sell_account,
        symbol=trade.symbol,
        event_id=trade.event_id,
        occurred_at=trade.occurred_at,
        summary=f"{trade.symbol} traded at {trade.price}, outside its band {low}-{high}",
        details={
            "execution_id": trade.execution_id,
            "price": str(trade.price),
            "low": str(low),
            "high": str(high),
        },
    )


def _window(occurred_at: datetime, window_s: int) -> int:
    return int(occurred_at.timestamp()) // window_s


def order_to_trade_ratio(
    account: str, counts: ActivityCounts, limits: RatioLimits, event_id: str, occurred_at: datetime
) -> Finding | None:
    if counts.order_messages < limits.min_order_messages:
        return None
    ratio = Decimal(counts.order_messages) / Decimal(max(counts.trades, 1))
    if ratio <= limits.max_order_to_trade:
        return None
    return Finding(
        finding_id=f"order_to_trade_ratio:{account}:{_window(occurred_at, limits.window_s)}",
        rule="order_to_trade_ratio",
        severity="MEDIUM",
        account=account,
        symbol=None,
        event_id=event_id,
        occurred_at=occurred_at,
        summary=f"{account}: {counts.order_messages} order messages for {counts.trades} trades "
        f"in {limits.window_s}s (limit {limits.max_order_to_trade}:1)",
        details=_count_details(counts, limits, ratio),
    )


def cancel_ratio(
    account: str, counts: ActivityCounts, limits: RatioLimits, event_id: str, occurred_at: datetime
) -> Finding | None:
    if counts.new_orders < limits.min_new_orders:
        return None
    ratio = Decimal(counts.cancels) / Decimal(counts.new_orders)
    if ratio <= limits.max_cancel_ratio:
        return None
    return Finding(
        finding_id=f"cancel_ratio:{account}:{_window(occurred_at, limits.window_s)}",
        rule="cancel_ratio",
        severity="LOW",
        account=account,
        symbol=None,
        event_id=event_id,
        occurred_at=occurred_at,
        summary=f"{account}: cancelled {counts.cancels} of {counts.new_orders} new orders "
        f"in {limits.window_s}s (limit {limits.max_cancel_ratio})",
        details=_count_details(counts, limits, ratio),
    )


def _count_details(counts: ActivityCounts, limits: RatioLimits, ratio: Decimal) -> dict[str, str]:
    return {
        "window_s": str(limits.window_s),
        "new_orders": str(counts.new_orders),
        "replaces": str(counts.replaces),
        "cancels": str(counts.cancels),
        "trades": str(counts.trades),
        "ratio": str(ratio.quantize(Decimal("0.01"))),
    }
