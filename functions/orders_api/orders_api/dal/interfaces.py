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
from typing import TYPE_CHECKING, Any, Protocol

from meridian.approvals import ApprovalOutcome, Decision
from meridian.events import EventDetail
from meridian.exposure import Breach, Exposure, Limits
from meridian.orders.record import OrderRecord

if TYPE_CHECKING:  # the ledger's rows; psycopg is imported with them, and only where a ledger is read
    from meridian.ledger.queries import PositionRow, TradeRow
from meridian.resting_orders import RestingChange


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
class StoredOrder:
    """An order as stored, with what the API keeps beside it for retries of its submission."""

    record: OrderRecord
    answer: str | None = None  # the first answer to POST /orders (JSON), replayed to retries
    request_hash: str | None = None  # of the first request, when it had an idempotency key
    in_progress_until: int = 0  # epoch ms: a request is sending it to the node until then


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """An Idempotency-Key that names an order with a client order id of its own."""

    key_id: str  # "<account>#<key>"
    expires_at: int  # epoch seconds (the table's TTL)


@dataclass(frozen=True, slots=True)
class Opening:
    """A new order and the reservation of its exposure against the account's limits, written together."""

    stored: StoredOrder
    limits: Limits
    key: KeyClaim | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """What the conditional create found: created, or what stands in the way."""

    created: bool
    existing: StoredOrder | None = None  # the order with this id exists already
    key_order_id: str | None = None  # the Idempotency-Key names this order already
    key_request_hash: str | None = None
    breach: tuple[Breach, str] | None = None  # the reservation would pass this limit


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """The order's new state, written only if the stored state is still ``base`` (its status and
    ``last_seq``); its account's exposure changes by ``new``'s contribution minus ``base``'s."""

    base: OrderRecord
    new: OrderRecord
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class Recording:
    """What one answer of the node changed, written together: the order (if any) and the resting
    orders it touched, each with its account's exposure."""

    order: OrderWrite | None
    others: Sequence[RestingChange] = ()
    reserved: Exposure = field(default_factory=Exposure)  # held for this change before the node: released


@dataclass(frozen=True, slots=True)
class Recorded:
    written: bool  # False: the order's stored state was not the expected one; ``current`` is it
    current: OrderRecord | None = None


class ApprovalDesk(Protocol):
    def decide(
        self, order_id: str, decision: Decision, reviewer: str, comment: str, at: datetime
    ) -> ApprovalOutcome:
        """Record the decision and answer the waiting order flow; raises ``meridian.approvals`` errors."""
        ...


class OrderStore(Protocol):
    def get(self, order_id: str) -> OrderRecord | None: ...

    def get_stored(self, order_id: str) -> StoredOrder | None: ...

    def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRecord]: ...

    def open(self, opening: Opening) -> Opened:
        """Create the order and reserve its exposure (and claim its Idempotency-Key), all or nothing."""
        ...

    def discard(self, opening: Opening) -> None:
        """Undo ``open`` for an order that never reached a node."""
        ...

    def record(self, recording: Recording) -> Recorded:
        """Write what the node answered (see ``Recording``), exactly once per answer."""
        ...

    def reserve(self, account: str, delta: Exposure, limits: Limits) -> tuple[Breach, str] | None:
        """Add ``delta`` to the account's exposure unless a limit would be passed (then: which)."""
        ...

    def release(self, account: str, delta: Exposure) -> None:
        """Take back a reservation whose change did not happen."""
        ...

    def claim(self, order_id: str, until: int, now: int) -> bool:
        """Mark an UNCONFIRMED order as being resolved until ``until`` (epoch ms), unless another
        request is resolving it (its mark is after ``now``); ``until=0`` clears the mark."""
        ...

    def seed_exposure(self, account: str, positions: Mapping[str, int]) -> None:
        """Add the account's ledger positions to its exposure, once."""
        ...

    def list(self, query: OrderQuery) -> Page: ...


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_quantity: int
    max_notional: Decimal
    max_open_orders: int
    position_limits: Mapping[str, int] = field(default_factory=dict)
    max_open_notional: Decimal | None = None

    def exposure_limits(self) -> Limits:
        return Limits(self.max_open_orders, self.max_open_notional, self.position_limits)


@dataclass(frozen=True, slots=True)
class TradingControl:
    scope: str  # "GLOBAL" or a symbol
    halted: bool = False
    restricted: bool = False
    approval_required: bool = False
    reason: str = ""
    actor: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderReference:
    """The reference data one order is checked against."""

    limits: RiskLimits | None  # None: the account has no limits of its own (the defaults apply)
    global_control: TradingControl
    symbol_control: TradingControl


class ReferenceStore(Protocol):
    """Principals, per-account risk limits and trading controls (halts, restrictions)."""

    def principal(self, keys: list[str]) -> Mapping[str, Any] | None: ...

    def risk_limits(self, account: str) -> RiskLimits | None: ...

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        """(global control, the symbol's control); defaults when nothing is stored."""
        ...

    def for_order(self, account: str, symbol: str) -> OrderReference:
        """The account's limits and the controls of ``symbol``, read together."""
        ...

    def is_fresh(self, account: str, symbol: str) -> bool:
        """Whether ``for_order`` would answer from memory, without reading a table."""
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
    book_seq: int | None = None


@dataclass(frozen=True, slots=True)
class TapeTrade:
    price: Decimal
    quantity: int
    execution_id: str
    occurred_at: str


class MarketDataReader(Protocol):
    def book(self, symbol: str) -> BookSnapshot | None: ...

    def last_trades(self, symbol: str, limit: int) -> list[TapeTrade]: ...


class ReferencePrices(Protocol):
    """The price an order is checked against: the symbol's last trade (None before the first)."""

    def last_price(self, symbol: str) -> Decimal | None: ...

    def is_fresh(self, symbol: str) -> bool:
        """Whether ``last_price`` would answer from memory, without reading a table."""
        ...


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

    def order_fills(self, order_id: str) -> list[TradeRow]:
        """Every trade of one order, oldest first."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[EventDetail]) -> None:
        """Deliver every event or raise: retries, then the dead-letter queue, never a silent drop."""
        ...
