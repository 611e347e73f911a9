"""The function's environment, parsed once into a typed model."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from meridian.config import from_environment


class Settings(BaseModel):
    """Everything the order API reads from its environment (names in upper case)."""

    model_config = ConfigDict(frozen=True)

    orders_table: str = "meridian-orders"
    idempotency_table: str = "meridian-idempotency"
    risk_limits_table: str = "meridian-risk-limits"
    principals_table: str = "meridian-principals"
    trading_controls_table: str = "meridian-trading-controls"
    order_approvals_table: str = "meridian-order-approvals"
    exposure_table: str = "meridian-exposure"
    market_data_table: str = "meridian-market-data"
    event_bus_name: str = "meridian-trading"
    events_dlq_url: str = ""
    hotpath_timeout_ms: int = Field(default=2000, gt=0)
    large_order_notional: Decimal = Decimal("1000000")
    default_max_order_quantity: int = 100_000
    default_max_notional: Decimal = Decimal("5000000")
    default_max_open_orders: int = 500
    default_max_open_notional: Decimal | None = None  # none: open notional is tracked, not limited
    # Principals, risk limits and trading controls are kept this long in the warm function (the
    # matching node enforces halts itself: a cached control is briefly permissive at the API only).
    reference_ttl_seconds: float = Field(default=1.0, ge=0)
    idempotency_ttl_seconds: int = 24 * 3600
    retry_after_seconds: int = 1
    database_url: str = ""
    version: str = "1.0.0"


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings for this process; tests clear the cache after changing the environment."""
    return from_environment(Settings)
