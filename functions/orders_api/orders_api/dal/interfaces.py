"""The storage interfaces the logic is written against, and the plain values they exchange.

Implementations: ``dynamo_orders`` / ``dynamo_reference`` / ``market_data`` (DynamoDB),
``ledger`` (PostgreSQL), ``eventbridge`` (PutEvents with retries and a DLQ) and ``hotpath`` (the
matching node). Each is imported only when the services are built, so importing the handler does
not pay for boto3 or psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from meridian.approvals import ApprovalOutcome, Decision
from meridian.events import EventDetail
from orders_api.records import OrderRecord


class InvalidPageTokenError(ValueError):
    """A next_token that this API did not issue for this query."""


@dataclass(frozen=True, slots=True)
class OrderQuery:
    account: str | None = None
    status: str | None = None
    symbol: str | None = None
    limit: int = 50
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    records: list[OrderRecord]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class FillUpdate:
    """What a fill or a cancel tells about a resting order, keyed by the order's API id."""

    order_id: str
    leaves_quantity: int
    seq: int
    cancelled: bool = False


class ApprovalDesk(Protocol):
    def decide(
        self, order_id: str, decision: Decision, reviewer: str, comment: str, at: datetime
    ) -> ApprovalOutcome:
        """Record the decision and answer the waiting order flow; raises ``meridian.approvals`` errors."""
        ...


class OrderStore(Protocol):
    def get(self, order_id: str) -> OrderRecord | None: ...

    def create(self, record: OrderRecord) -> bool:
        """Store a new order; False (and nothing written) when the id exists already."""
        ...

    def save(self, record: OrderRecord) -> None:
        """Store the order's state as the node last described it (never older than what is stored)."""
        ...

    def apply_updates(self, updates: Sequence[FillUpdate]) -> None:
        """Apply fills and cancels to resting orders made by other requests."""
        ...

    def list(self, query: OrderQuery) -> Page: ...

    def count_open(self, account: str) -> int: ...


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_quantity: int
    max_notional: Decimal
    max_open_orders: int
    position_limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TradingControl:
    scope: str  # "GLOBAL" or a symbol
    halted: bool = False
    restricted: bool = False
    approval_required: bool = False
    reason: str = ""
    actor: str = ""
    updated_at: datetime | None = None


class ReferenceStore(Protocol):
    """Principals, per-account risk limits and trading controls (halts, restrictions)."""

    def principal(self, keys: list[str]) -> Mapping[str, Any] | None: ...

    def risk_limits(self, account: str) -> RiskLimits | None: ...

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        """(global control, the symbol's control); defaults when nothing is stored."""
        ...

    def set_halted(
        self, scope: str, halted: bool, actor: str, reason: str, at: datetime
    ) -> TradingControl: ...


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    symbol: str
    bid_price: Decimal | None = None
    bid_quantity: int | None = None
    ask_price: Decimal | None = None
    ask_quantity: int | None = None
    bids: list[tuple[Decimal, int]] = field(default_factory=list)
    asks: list[tuple[Decimal, int]] = field(default_factory=list)
    node_seq: int | None = None
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class TapeTrade:
    price: Decimal
    quantity: int
    execution_id: str
    occurred_at: str


class MarketDataReader(Protocol):
    def book(self, symbol: str) -> BookSnapshot | None: ...

    def last_trades(self, symbol: str, limit: int) -> list[TapeTrade]: ...


@dataclass(frozen=True, slots=True)
class PositionRow:
    account: str
    symbol: str
    quantity: int
    average_price: Decimal
    realised_pnl: Decimal
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class TradeRow:
    execution_id: str
    symbol: str
    price: Decimal
    quantity: int
    aggressor_side: str
    buy_order_id: str
    sell_order_id: str
    buy_account: str
    sell_account: str
    occurred_at: datetime
    ledger_seq: int


@dataclass(frozen=True, slots=True)
class TradePageRows:
    rows: list[TradeRow]
    next_token: str | None


class LedgerReader(Protocol):
    """Read queries on the post-trade ledger (PostgreSQL)."""

    def positions(self, account: str | None, symbol: str | None = None) -> list[PositionRow]: ...

    def position(self, account: str, symbol: str) -> int:
        """The account's signed quantity in ``symbol`` (0 when flat or unknown)."""
        ...

    def trades(
        self, account: str | None, symbol: str | None, limit: int, cursor: str | None
    ) -> TradePageRows:
        """Newest first; InvalidPageTokenError for a cursor the ledger did not issue."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[EventDetail]) -> None:
        """Deliver every event or raise: retries, then the dead-letter queue, never a silent drop."""
        ...
