"""The market-data function's environment, parsed into a typed model (``meridian.config``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from meridian.config import from_environment

from .writer import DEFAULT_CONCURRENCY


class Settings(BaseModel):
    """Every variable the function reads (names in upper case)."""

    model_config = ConfigDict(frozen=True)

    market_data_table: str = "meridian-market-data"
    trade_ttl_days: int = Field(default=7, ge=0, description="how long last-trade items are kept")
    market_data_write_concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, description="parallel write lanes"
    )


def settings() -> Settings:
    """Read on every invocation: cheap, and never stale when one process hosts several functions."""
    return from_environment(Settings)
