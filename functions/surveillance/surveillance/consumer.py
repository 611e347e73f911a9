"""One queued lifecycle event -> activity logged, rules run, findings stored, alerts sent.

Activity and findings commit together; alerts go out after the commit for every finding of the
event not yet alerted, each marked once its message is accepted. A redelivered event therefore
adds nothing and only re-sends an alert whose earlier send failed (at-least-once alerts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from meridian.config import from_environment
from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.events import EventDetail, OrderAccepted, OrderCancelled, OrderReplaced, TradeExecuted

from .config import Settings
from .rules import (
    Finding,
    RatioLimits,
    cancel_ratio,
    linked_groups,
    order_to_trade_ratio,
    price_band,
    wash_trade,
)
from .store import Activity, mark_alerted, record_activity, save_findings, unalerted, window_counts

# Cancels the system makes (not the trader's choice) do not count towards the cancel ratio.
SYSTEM_CANCEL_REASONS = frozenset(
    {"IOC_REMAINDER", "FOK_UNFILLED", "SELF_TRADE", "END_OF_DAY", "NO_LIQUIDITY", "HALT"}
)


class AlertSender(Protocol):
    def send(self, finding: Finding) -> None: ...


@dataclass(frozen=True, slots=True)
class SurveillanceConfig:
    limits: RatioLimits = field(default_factory=RatioLimits)
    linked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    instruments: Mapping[str, Instrument] = field(
        default_factory=lambda: {i.symbol: i for i in DEFAULT_INSTRUMENTS}
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SurveillanceConfig:
        settings = from_environment(Settings, env)
        groups = json.loads(settings.surveillance_linked_accounts or "[]")
        return cls(limits=settings.limits, linked=linked_groups(groups))


def activities_of(detail: EventDetail) -> list[Activity]:
    at = detail.occurred_at
    if isinstance(detail, TradeExecuted):
        accounts = {detail.buy_account, detail.sell_account}
        return [Activity(detail.event_id, a, "trade", detail.symbol, at) for a in sorted(accounts)]
    if isinstance(detail, OrderAccepted):
        return [Activity(detail.event_id, detail.account, "order", detail.symbol, at)]
    if isinstance(detail, OrderReplaced):
        return [Activity(detail.event_id, detail.account, "replace", detail.symbol, at)]
    if isinstance(detail, OrderCancelled) and detail.reason.upper() not in SYSTEM_CANCEL_REASONS:
        return [Activity(detail.event_id, detail.account, "cancel", detail.symbol, at)]
    return []


def evaluate(conn: psycopg.Connection[Any], detail: EventDetail, config: SurveillanceConfig) -> list[Finding]:
    """Every rule that applies to ``detail`` (its activity already logged)."""
    found: list[Finding | None] = []
    if isinstance(detail, TradeExecuted):
        found += [wash_trade(detail, config.linked), price_band(detail, config.instruments)]
    elif isinstance(detail, OrderAccepted | OrderReplaced | OrderCancelled):
        counts = window_counts(conn, detail.account, detail.occurred_at, config.limits.window_s)
        for rule in (order_to_trade_ratio, cancel_ratio):
            found.append(rule(detail.account, counts, config.limits, detail.event_id, detail.occurred_at))
    return [f for f in found if f is not None]


def surveil(
    conn: psycopg.Connection[Any], detail: EventDetail, config: SurveillanceConfig, alerts: AlertSender
) -> list[Finding]:
    """Run surveillance on one event; returns the findings alerted by this call."""
    with conn.transaction():
        record_activity(conn, activities_of(detail))
        save_findings(conn, evaluate(conn, detail, config))
    sent = []
    for finding in unalerted(conn, detail.event_id):
        alerts.send(finding)
        mark_alerted(conn, [finding.finding_id])
        sent.append(finding)
    return sent
