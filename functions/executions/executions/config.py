"""The executions function's environment, parsed into a typed model (``meridian.config``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from meridian.config import from_environment


class Settings(BaseModel):
    """Every variable the function reads (names in upper case)."""

    model_config = ConfigDict(frozen=True)

    event_bus_name: str  # the trading bus, where trade.executed.v1 goes (required)


def settings() -> Settings:
    return from_environment(Settings)
