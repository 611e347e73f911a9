"""The runbook functions' environment, parsed into a typed model on every invocation."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from meridian.config import from_environment


class Settings(BaseModel):
    """Every variable the runbook functions read (names in upper case)."""

    model_config = ConfigDict(frozen=True)

    compliance_archive_bucket: str = ""
    compliance_archive_prefix: str = ""
    compliance_kms_key_arn: str = ""
    engine_archive_bucket: str = ""
    engine_archive_prefixes: str = Field(
        default="", description="one archive prefix per matching node, comma separated"
    )
    primary_meridian_routes: str = Field(
        default="", description="route table JSON of the old primary's nodes"
    )
    rto_target_seconds: float = 30.0
    orders_table: str = Field(default="", description="the (replicated) orders table, for reconciliation")
    market_data_table: str = Field(default="", description="the (replicated) market-data table")
    reconciliation_window_seconds: float = Field(
        default=3600.0, gt=0, description="closed orders created this long before the switchover are checked"
    )
    meridian_environment: str = ""
    meridian_routes_parameter: str = Field(
        default="", description="the route table's SSM parameter (the symbol-move runbook switches it)"
    )
    meridian_shard_addresses: str = Field(
        default="",
        description="every shard of the fleet, one host:port each, comma separated (the hot path's "
        "ShardAddresses): a shard that owns no symbol yet is a move's destination too",
    )
    archive_catch_up_seconds: float = Field(
        default=30.0, ge=0, description="longest wait for the archive to hold an answering old primary's seq"
    )
    halt_settle_seconds: float = Field(
        default=2.0, ge=0, description="an answering old primary's seq must stay put this long after the halt"
    )

    @property
    def node_prefixes(self) -> list[str]:
        return [p.strip() for p in self.engine_archive_prefixes.split(",") if p.strip()]


def settings() -> Settings:
    """Read on every invocation: never stale when one process hosts several functions."""
    return from_environment(Settings)


def primary_database_environment() -> dict[str, str] | None:
    """``PRIMARY_DATABASE_URL`` / ``PRIMARY_DB_*`` as the unprefixed names ``meridian.db`` reads."""
    prefixed = {
        k.removeprefix("PRIMARY_"): v
        for k, v in os.environ.items()
        if k.startswith(("PRIMARY_DATABASE_URL", "PRIMARY_DB_")) and v.strip()
    }
    return prefixed or None
