"""The order API's stores in memory: the same routes with no AWS call at all.

``make bench-api`` measures each route against this floor: what the handler, its logic and the
matching node cost by themselves, beside the same route over (emulated) AWS. The stores keep the
rules the routes depend on (a create refused when the id exists, a record written only over the
state it was derived from, the exposure reserved against the limits) and nothing else: they are
not a database, and nothing but the floor uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from orders_api.config import Settings
from orders_api.dal.hotpath import MatchingGateway
from orders_api.dal.interfaces import (
    BookSnapshot,
    Opened,
    Opening,
    OrderQuery,
    OrderReference,
    Page,
    Recorded,
    Recording,
    RiskLimits,
    StoredOrder,
    TapeTrade,
    TradingControl,
)
from orders_api.services import Services, default_instruments

from meridian import exposure
from meridian.domain import Instrument
from meridian.events import EventDetail
from meridian.exposure import Breach, Exposure, Limits
from meridian.orders.record import OrderRecord
from tests.orders_api_fixtures import EmptyLedger


def _item(total: Exposure, seeded: bool) -> dict[str, Any]:
    """An exposure as the stored item ``meridian.exposure.breach`` reads."""
    values: dict[str, Any] = {exposure.OPEN_ORDERS: {"N": str(total.open_orders)}}
    values[exposure.OPEN_NOTIONAL] = {"N": format(total.notional, "f")}
    values.update({exposure.long_attribute(s): {"N": str(q)} for s, q in total.long.items()})
    values.update({exposure.short_attribute(s): {"N": str(q)} for s, q in total.short.items()})
    if seeded:
        values[exposure.SEEDED_AT] = {"S": "memory"}
    return values


@dataclass
class MemoryOrderStore:
    instruments: Mapping[str, Instrument]
    orders: dict[str, StoredOrder] = field(default_factory=dict)
    keys: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    exposures: dict[str, Exposure] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)

    def _of(self, record: OrderRecord) -> Exposure:
        return record.exposure(self.instruments[record.symbol])

    def _add(self, account: str, delta: Exposure) -> None:
        self.exposures[account] = self.exposures.get(account, Exposure()) + delta

    def get(self, order_id: str) -> OrderRecord | None:
        stored = self.orders.get(order_id)
        return stored.record if stored else None

    def get_stored(self, order_id: str) -> StoredOrder | None:
        return self.orders.get(order_id)

    def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        return {i: self.orders[i].record for i in order_ids if i in self.orders}

    def reserve(self, account: str, delta: Exposure, limits: Limits) -> tuple[Breach, str] | None:
        item = _item(self.exposures.get(account, Exposure()), account in self.seeded)
        breach = exposure.breach(item, delta, limits)
        if breach is None:
            self._add(account, delta)
        return breach

    def release(self, account: str, delta: Exposure) -> None:
        self._add(account, -delta)

    def open(self, opening: Opening) -> Opened:
        record = opening.stored.record
        existing = self.orders.get(record.order_id)
        key = self.keys.get(opening.key.key_id) if opening.key else None
        item = _item(self.exposures.get(record.account, Exposure()), record.account in self.seeded)
        breach = exposure.breach(item, self._of(record), opening.limits)
        if existing or key or breach:
            return Opened(False, existing, key[0] if key else None, key[1] if key else None, breach)
        self.orders[record.order_id] = opening.stored
        self._add(record.account, self._of(record))
        if opening.key:
            self.keys[opening.key.key_id] = (record.order_id, opening.stored.request_hash)
        return Opened(created=True)

    def discard(self, opening: Opening) -> None:
        record = opening.stored.record
        self.orders.pop(record.order_id, None)
        self._add(record.account, -self._of(record))
        if opening.key:
            self.keys.pop(opening.key.key_id, None)

    def record(self, recording: Recording) -> Recorded:
        own = recording.order
        if own is not None:
            stored = self.orders.get(own.new.order_id)
            base = own.base
            if stored is None or (stored.record.status, stored.record.last_seq) != (
                base.status,
                base.last_seq,
            ):
                return Recorded(False, stored.record if stored else None)
            self.orders[own.new.order_id] = StoredOrder(
                own.new, own.answer or stored.answer, stored.request_hash
            )
            self._add(own.new.account, self._of(own.new) - self._of(base) - recording.reserved)
        for change in recording.others:
            resting = self.orders.get(change.order_id)
            if resting is None or not resting.record.is_open or resting.record.last_seq >= change.seq:
                continue
            record = resting.record
            leaves = 0 if change.cancelled else change.leaves_after
            status = change.status
            filled = record.filled_quantity if change.cancelled else record.quantity - leaves
            new = record.evolve(
                leaves_quantity=leaves, filled_quantity=filled, status=status, last_seq=change.seq
            )
            self.orders[change.order_id] = StoredOrder(new, resting.answer, resting.request_hash)
            self._add(change.account, self._of(new) - self._of(record))
        return Recorded(written=True)

    def claim(self, order_id: str, until: int, now: int) -> bool:
        stored = self.orders.get(order_id)
        if stored is None or stored.record.status != "UNCONFIRMED":
            return False
        if until and stored.in_progress_until >= now:
            return False
        self.orders[order_id] = StoredOrder(stored.record, stored.answer, stored.request_hash, until)
        return True

    def seed_exposure(self, account: str, positions: Mapping[str, int]) -> None:
        if account not in self.seeded:
            self.seeded.add(account)
            self._add(account, Exposure(long=dict(positions), short={s: -q for s, q in positions.items()}))

    def list(self, query: OrderQuery) -> Page:
        found = [
            s.record
            for s in self.orders.values()
            if query.account in (None, s.record.account) and query.status in (None, s.record.status)
        ]
        return Page(sorted(found, key=lambda r: r.created_at, reverse=True)[: query.limit], None)


@dataclass
class MemoryReference:
    principals: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def principal(self, keys: list[str]) -> Mapping[str, Any] | None:
        return next((self.principals[k] for k in keys if k in self.principals), None)

    def risk_limits(self, account: str) -> RiskLimits | None:
        return None

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        return TradingControl("GLOBAL"), TradingControl(symbol)

    def for_order(self, account: str, symbol: str) -> OrderReference:
        return OrderReference(None, *self.controls(symbol))

    def is_fresh(self, account: str, symbol: str) -> bool:
        return True

    def set_halted(self, scope: str, halted: bool, actor: str, reason: str, at: datetime) -> TradingControl:
        return TradingControl(scope, halted=halted, actor=actor, reason=reason, updated_at=at)


class NoMarketData:
    def book(self, symbol: str) -> BookSnapshot | None:
        return None

    def last_trades(self, symbol: str, limit: int) -> list[TapeTrade]:
        return []


class NoTrades:
    def last_price(self, symbol: str) -> Decimal | None:
        return None

    def is_fresh(self, symbol: str) -> bool:
        return True


class DiscardedEvents:
    def publish(self, events: Sequence[EventDetail]) -> None:
        """The floor sends nothing."""


class NoApprovals:
    def decide(self, *args: Any) -> Any:
        raise NotImplementedError("approvals are not part of the measured routes")


def memory_services(
    settings: Settings, gateway: MatchingGateway, principals: Mapping[str, Mapping[str, Any]]
) -> Services:
    instruments = default_instruments()
    return Services(
        settings=settings,
        orders=MemoryOrderStore(instruments),
        reference=MemoryReference(dict(principals)),
        market_data=NoMarketData(),
        ledger=EmptyLedger(),
        events=DiscardedEvents(),
        gateway=gateway,
        instruments=instruments,
        approvals=NoApprovals(),
        prices=NoTrades(),
    )
