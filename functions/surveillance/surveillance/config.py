"""The surveillance function's environment, parsed into a typed model (``meridian.config``)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from meridian.config import from_environment

from .rules import RatioLimits

_DEFAULTS = RatioLimits()


class Settings(BaseModel):
    """Every variable the function reads (names in upper case): the rules' limits, the groups of
    linked accounts (JSON, a list of lists of accounts) and where alerts go."""

    model_config = ConfigDict(frozen=True)

    surveillance_window_seconds: int = _DEFAULTS.window_s
    surveillance_max_order_to_trade: Decimal = _DEFAULTS.max_order_to_trade
    surveillance_min_order_messages: int = _DEFAULTS.min_order_messages
    surveillance_max_cancel_ratio: Decimal = _DEFAULTS.max_cancel_ratio
    surveillance_min_new_orders: int = _DEFAULTS.min_new_orders
    surveillance_linked_accounts: str = Field(default="[]", description="JSON: [[account, ...], ...]")
    compliance_alerts_topic_arn: str = ""

    @property
    def limits(self) -> RatioLimits:
        return RatioLimits(
            window_s=self.surveillance_window_seconds,
            max_order_to_trade=self.surveillance_max_order_to_trade,
            min_order_messages=self.surveillance_min_order_messages,
            max_cancel_ratio=self.surveillance_max_cancel_ratio,
            min_new_orders=self.surveillance_min_new_orders,
        )


def settings() -> Settings:
    return from_environment(Settings)
