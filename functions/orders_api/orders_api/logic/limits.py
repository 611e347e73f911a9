"""What an order is checked against, and the reservation of its exposure (shared by submit and replace).

The reference data (the account's limits, the symbol's controls) and the symbol's last trade are
read together, in one round trip; the reference data usually comes from the warm function's cache.
An account's exposure starts from its ledger positions, added once before its first order.
"""

from __future__ import annotations

from meridian.domain import Instrument
from meridian.exposure import Breach, Exposure
from meridian.orders.record import OrderRecord
from orders_api import concurrency, risk
from orders_api.dal.interfaces import OrderReference, RiskLimits
from orders_api.errors import ServiceUnavailableError
from orders_api.services import Services


def order_reads(
    services: Services, record: OrderRecord, instrument: Instrument
) -> tuple[OrderReference, int | None]:
    """The order's reference data and the symbol's last trade (in ticks), both usually from the warm
    function's cache (``dal.cached_reference``); what must be read is read in one round trip."""

    def reference() -> OrderReference:
        return services.reference.for_order(record.account, record.symbol)

    def last_trade() -> int | None:
        price = services.prices.last_price(record.symbol)
        return None if price is None else instrument.to_ticks(price)

    if services.reference.is_fresh(record.account, record.symbol) or services.prices.is_fresh(record.symbol):
        return reference(), last_trade()  # one of them at most is read
    return concurrency.together(reference, last_trade)


def account_limits(services: Services, reference: OrderReference) -> RiskLimits:
    s = services.settings
    return reference.limits or RiskLimits(
        max_order_quantity=s.default_max_order_quantity,
        max_notional=s.default_max_notional,
        max_open_orders=s.default_max_open_orders,
        max_open_notional=s.default_max_open_notional,
    )


def risk_inputs(
    services: Services, reference: OrderReference, limits: RiskLimits, last_ticks: int | None
) -> risk.RiskInputs:
    return risk.RiskInputs(
        limits=limits,
        last_trade_ticks=last_ticks,
        global_control=reference.global_control,
        symbol_control=reference.symbol_control,
        large_order_notional=services.settings.large_order_notional,
    )


def seed_exposure(services: Services, account: str) -> None:
    """Add the account's ledger positions to its exposure (once; before its first order)."""
    try:
        positions = {p.symbol: p.quantity for p in services.ledger.positions(account)}
    except Exception as exc:  # fail closed: limits that cannot be checked refuse the order
        raise ServiceUnavailableError(
            "LEDGER_UNAVAILABLE", "positions cannot be read to check the account's limits"
        ) from exc
    services.orders.seed_exposure(account, positions)


def limited_growth(change: Exposure, limits: RiskLimits) -> Exposure:
    """What a change of an order must reserve before the node acts on it: its growth, if it grows
    towards one of the account's limits; nothing otherwise (it is recorded with the node's answer)."""
    growth = change.increases()
    bounded = limits.exposure_limits()
    if (
        (growth.open_orders and bounded.max_open_orders is not None)
        or (growth.notional and bounded.max_open_notional is not None)
        or any(s in bounded.position_limits for s in (*growth.long, *growth.short))
    ):
        return growth
    return Exposure()


def reserve_with_seeding(
    services: Services, account: str, delta: Exposure, limits: RiskLimits
) -> tuple[Breach, str] | None:
    breach = services.orders.reserve(account, delta, limits.exposure_limits())
    if breach is not None and breach[0] == "NOT_SEEDED":
        seed_exposure(services, account)
        breach = services.orders.reserve(account, delta, limits.exposure_limits())
    if breach is not None and breach[0] == "NOT_SEEDED":
        raise ServiceUnavailableError("EXPOSURE_BUSY", breach[1], services.settings.retry_after_seconds)
    return breach
