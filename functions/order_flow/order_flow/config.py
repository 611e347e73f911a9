"""The order-flow functions' environment, parsed once into a typed model."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from meridian.config import from_environment


class Settings(BaseModel):
    """Every variable the order-flow functions read (names in upper case)."""

    model_config = ConfigDict(frozen=True)

    orders_table: str = "meridian-orders"
    exposure_table: str = "meridian-exposure"
    order_approvals_table: str = "meridian-order-approvals"
    compliance_approvals_topic_arn: str = ""
    approval_api_url: str = Field(default="", description="base URL of the order API, for the notice")
    large_order_notional: Decimal = Decimal("1000000")
    max_order_notional: Decimal = Decimal("50000000")
    restricted_symbols: str = Field(default="", description="comma-separated symbols needing approval")
    hotpath_timeout_ms: int = Field(default=2000, gt=0)
    event_bus_name: str = "default"  # where the routed order's lifecycle events go

    @property
    def restricted(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.restricted_symbols.split(",") if s.strip())


def settings() -> Settings:
    """Read on every invocation: cheap, and never stale when one process hosts several functions."""
    return from_environment(Settings)
