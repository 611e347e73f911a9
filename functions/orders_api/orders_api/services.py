"""The container's long-lived collaborators, built on first use (not at import: cold start).

Tests and the local platform replace them with ``use(...)``; ``reset()`` forgets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from orders_api.config import Settings, settings

if TYPE_CHECKING:
    from orders_api.dal.hotpath import MatchingGateway
    from orders_api.dal.interfaces import (
        ApprovalDesk,
        EventPublisher,
        LedgerReader,
        MarketDataReader,
        OrderStore,
        ReferencePrices,
        ReferenceStore,
    )


@dataclass(slots=True)
class Services:
    settings: Settings
    orders: OrderStore
    reference: ReferenceStore
    market_data: MarketDataReader
    ledger: LedgerReader
    events: EventPublisher
    gateway: MatchingGateway
    instruments: Mapping[str, Instrument]
    approvals: ApprovalDesk
    prices: ReferencePrices


def default_instruments() -> dict[str, Instrument]:
    return {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}


def build(config: Settings | None = None) -> Services:
    """Wire the AWS and PostgreSQL implementations from the environment."""
    # Deferred imports: boto3 and psycopg load here, on the first request, not at import.
    from meridian import db  # noqa: PLC0415
    from orders_api.aws import client  # noqa: PLC0415
    from orders_api.dal.approvals import StepFunctionsApprovalDesk  # noqa: PLC0415
    from orders_api.dal.cached_reference import CachedReferencePrices, CachedReferenceStore  # noqa: PLC0415
    from orders_api.dal.dynamo_orders import DynamoOrderStore  # noqa: PLC0415
    from orders_api.dal.dynamo_reference import DynamoReferenceStore  # noqa: PLC0415
    from orders_api.dal.eventbridge import EventBridgePublisher  # noqa: PLC0415
    from orders_api.dal.ledger import PostgresLedgerReader  # noqa: PLC0415
    from orders_api.dal.market_data import DynamoMarketDataReader  # noqa: PLC0415

    s = config or settings()
    dynamodb = client("dynamodb")
    instruments = default_instruments()
    reference = DynamoReferenceStore(
        dynamodb, s.principals_table, s.risk_limits_table, s.trading_controls_table
    )
    market_data = DynamoMarketDataReader(dynamodb, s.market_data_table)
    return Services(
        settings=s,
        orders=DynamoOrderStore(dynamodb, s.orders_table, s.exposure_table, s.idempotency_table, instruments),
        reference=CachedReferenceStore(reference, s.reference_ttl_seconds),
        market_data=market_data,
        ledger=PostgresLedgerReader(db.shared_connection),
        events=EventBridgePublisher(
            client("events"), s.event_bus_name, client("sqs") if s.events_dlq_url else None, s.events_dlq_url
        ),
        gateway=_gateway(s),
        instruments=instruments,
        approvals=StepFunctionsApprovalDesk(
            dynamodb, s.order_approvals_table, lambda: client("stepfunctions")
        ),
        prices=CachedReferencePrices(market_data, s.reference_ttl_seconds),
    )


def _gateway(s: Settings) -> MatchingGateway:
    from meridian.routing import Router, RoutingError, provider_from_environment  # noqa: PLC0415
    from meridian.session_auth import credential_from_environment  # noqa: PLC0415
    from orders_api.dal.hotpath import HotpathGateway, UnroutedGateway  # noqa: PLC0415

    try:
        # The matching port's session key (the `orders` role): MERIDIAN_HOTPATH_KEY_SECRET_ARN on AWS.
        credential = credential_from_environment()
        router = Router(
            provider_from_environment(), timeout=s.hotpath_timeout_ms / 1000, credential=credential
        )
        return HotpathGateway(router)
    except RoutingError as exc:
        return UnroutedGateway(str(exc))


_current: Services | None = None


def current() -> Services:
    global _current
    if _current is None:
        _current = build()
    return _current


def use(services: Services | None) -> None:
    global _current
    _current = services


def reset() -> None:
    use(None)
