"""What a matching node's answer means for an order: its new state, fills, events, and the resting
orders of other requests that it touched. Pure: no I/O, the clock is passed in.

Both entry paths publish the order's lifecycle events (accepted, replaced, cancelled, rejected) but
no ``trade.executed``: the node's drop copy is the one source of those (``functions/executions``),
so a trade whose answer was lost still reaches the ledger. A fill's execution id is the fleet-wide
``meridian.executions.execution_id`` of its trade id, the same id the drop copy and the ledger carry.
A stop order of another request may fire inside an answer: any Ack after the first is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from meridian.domain import CancelReason, Instrument, OrderStatus, RejectReason, Side
from meridian.events import EventDetail, OrderAccepted, OrderRejected, OrderReplaced, order_cancelled
from meridian.executions import execution_id, order_id_for
from meridian.orders.record import Liquidity, OrderFill, OrderRecord, OrderStatusName
from meridian.protocol import Ack, CancelAck, Fill, Message, Reject
from meridian.resting_orders import RestingChange, merge


@dataclass(frozen=True, slots=True)
class SelfTradeCancel:
    """A resting order of the same account that self-trade prevention cancelled; the cancel does not
    carry its side and price, so it is recorded from the stored order (``resting_changes``)."""

    order_id: str
    account: str
    symbol: str
    seq: int
    cancelled_quantity: int
    reason: str = "SELF_TRADE"  # the CancelReason name


@dataclass(slots=True)
class Outcome:
    record: OrderRecord
    fills: list[OrderFill] = field(default_factory=list)
    events: list[EventDetail] = field(default_factory=list)
    others: list[RestingChange] = field(default_factory=list)
    self_trade_cancels: list[SelfTradeCancel] = field(default_factory=list)
    rejected: RejectReason | None = None
    # Stop orders of other requests that fired in this answer: node order id -> order id. Their
    # changes in ``others`` carry no price until the stored order gives its own (``resting_changes``).
    fired: dict[int, str] = field(default_factory=dict)
    trades: int = 0  # fills in the answer, the order's own and others'


def _settled_status(record: OrderRecord) -> OrderStatusName:
    if record.status in ("CANCELLED", "REJECTED", "PENDING_TRIGGER"):
        return record.status
    if record.leaves_quantity == 0 and record.filled_quantity > 0:
        return "FILLED"
    return "PARTIALLY_FILLED" if record.filled_quantity > 0 else "NEW"


def _accepted(record: OrderRecord, instrument: Instrument, seq: int, at: datetime) -> OrderAccepted:
    return OrderAccepted(
        event_id=f"{record.order_id}:accepted",
        occurred_at=at,
        order_id=record.order_id,
        client_order_id=record.client_order_id,
        account=record.account,
        symbol=record.symbol,
        side=record.side,
        order_type=record.type,
        time_in_force=record.time_in_force,
        quantity=record.quantity,
        price=None if record.price_ticks is None else instrument.to_price(record.price_ticks),
        stop_price=None if record.stop_price_ticks is None else instrument.to_price(record.stop_price_ticks),
        status=record.status,
        node_seq=seq,
    )


def interpret(
    record: OrderRecord,
    messages: Sequence[Message],
    instrument: Instrument,
    at: datetime,
    node: str | None,
    replaced: bool = False,
) -> Outcome:
    """Apply every frame of the answer ``node`` gave (to a new order, a replace or a cancel of
    ``record``). A new order the node refused becomes REJECTED; a refused change leaves it as it was."""
    out = Outcome(record)
    mine = record.node_order_id
    acked = False
    for message in messages:
        if isinstance(message, Reject):
            out.rejected = RejectReason(message.reason)
            if record.status == "UNCONFIRMED" or mine is None:  # a new order: it never existed
                out.record = out.record.evolve(
                    status="REJECTED",
                    reject_reason=out.rejected.name,
                    leaves_quantity=0,
                    last_seq=message.seq,
                    updated_at=at,
                )
                out.events.append(rejected_event(out.record, out.rejected.name, at))
            return out
        if isinstance(message, Ack) and acked and message.order_id != mine:
            _apply_fired(out, message)  # a stop order of another request fired in this answer
        elif isinstance(message, Ack):
            first, acked = not acked, True
            mine = message.order_id
            out.record = out.record.evolve(
                node=node,
                node_order_id=message.order_id,
                quantity=message.quantity,
                leaves_quantity=message.leaves_quantity,
                filled_quantity=message.filled_quantity,
                price_ticks=out.record.price_ticks if message.price == 0 else message.price,
                status=OrderStatus(message.status).name,
                last_seq=message.seq,
                updated_at=at,
            )
            if not first:
                continue
            if replaced:
                out.events.append(_replaced_event(out.record, instrument, message.seq, at))
            else:
                out.events.append(_accepted(out.record, instrument, message.seq, at))
        elif isinstance(message, Fill):
            out.trades += 1
            _apply_fill(out, message, mine, instrument, at)
        elif isinstance(message, CancelAck):
            _apply_cancel(out, message, mine, at)
    out.record = out.record.evolve(status=_settled_status(out.record))
    return out


def _apply_fill(out: Outcome, fill: Fill, mine: int | None, instrument: Instrument, at: datetime) -> None:
    exec_id = execution_id(fill.trade_id)
    price = instrument.to_price(fill.price)
    sides = (
        (Side.BUY, fill.buy_order_id, fill.buy_leaves_quantity, fill.buy_account, fill.buy_client_order_id),
        (
            Side.SELL,
            fill.sell_order_id,
            fill.sell_leaves_quantity,
            fill.sell_account,
            fill.sell_client_order_id,
        ),
    )
    for side, node_order_id, leaves, account, client_order_id in sides:
        if node_order_id == mine:
            record = out.record
            out.record = record.evolve(
                leaves_quantity=leaves,
                filled_quantity=record.quantity - leaves,  # the node's figures, not a running sum
                filled_notional_ticks=record.filled_notional_ticks + fill.price * fill.quantity,
                last_seq=fill.seq,
                updated_at=at,
            )
            liquidity: Liquidity = "TAKER" if fill.aggressor_side == side else "MAKER"
            out.fills.append(OrderFill(exec_id, instrument.price_text(price), fill.quantity, liquidity))
        else:
            out.others.append(
                RestingChange(
                    order_id=order_id_for(account, client_order_id),
                    account=account,
                    side="BUY" if side is Side.BUY else "SELL",
                    symbol=fill.symbol,
                    price=price,  # the resting order's own price (a fired stop's: see ``fired``)
                    seq=fill.seq,
                    leaves_before=leaves + fill.quantity,
                    leaves_after=leaves,
                    notional_ticks=fill.price * fill.quantity,
                )
            )


def _apply_cancel(out: Outcome, cancel: CancelAck, mine: int | None, at: datetime) -> None:
    order_id = order_id_for(cancel.account, cancel.client_order_id)
    if cancel.order_id == mine:
        record = out.record
        out.record = record.evolve(
            status="CANCELLED",
            leaves_quantity=0,
            filled_quantity=max(record.quantity - cancel.cancelled_quantity, 0),
            cancel_reason=CancelReason(cancel.reason).name,
            last_seq=cancel.seq,
            updated_at=at,
        )
    else:  # a resting order removed by self-trade prevention (or a fired stop's remainder)
        out.self_trade_cancels.append(
            SelfTradeCancel(
                order_id,
                cancel.account,
                cancel.symbol,
                cancel.seq,
                cancel.cancelled_quantity,
                CancelReason(cancel.reason).name,
            )
        )
    out.events.append(order_cancelled(cancel, at))


def _apply_fired(out: Outcome, ack: Ack) -> None:
    """Another request's stop order fired: it is working now (its fills and cancel follow)."""
    order_id = order_id_for(ack.account, ack.client_order_id)
    out.fired[ack.order_id] = order_id
    out.others.append(
        RestingChange(
            order_id=order_id,
            account=ack.account,
            side="BUY" if ack.side == Side.BUY else "SELL",
            symbol=ack.symbol,
            price=Decimal(0),  # completed from the stored order (``resting_changes``)
            seq=ack.seq,
            leaves_before=ack.leaves_quantity,
            leaves_after=ack.leaves_quantity,
            triggered=True,
        )
    )


def _replaced_event(record: OrderRecord, instrument: Instrument, seq: int, at: datetime) -> OrderReplaced:
    return OrderReplaced(
        event_id=f"{record.order_id}:replaced:{seq}",
        occurred_at=at,
        order_id=record.order_id,
        client_order_id=record.client_order_id,
        account=record.account,
        symbol=record.symbol,
        quantity=record.quantity,
        price=None if record.price_ticks is None else instrument.to_price(record.price_ticks),
        node_seq=seq,
    )


def rejected_event(
    record: OrderRecord, reason: str, at: datetime, message: str = "", event_id: str | None = None
) -> OrderRejected:
    """The order.rejected event of ``record``, whoever refused it (node, risk check, compliance)."""
    return OrderRejected(
        event_id=event_id or f"{record.order_id}:rejected",
        occurred_at=at,
        client_order_id=record.client_order_id,
        account=record.account,
        symbol=record.symbol,
        reason=reason,
        message=message,
    )


def stored_orders_wanted(outcome: Outcome) -> list[str]:
    """The orders ``resting_changes`` completes from their stored state."""
    return sorted({c.order_id for c in outcome.self_trade_cancels} | set(outcome.fired.values()))


def resting_changes(
    outcome: Outcome, stored: Mapping[str, OrderRecord], instruments: Mapping[str, Instrument]
) -> list[RestingChange]:
    """The resting orders an answer touched, one change per order (``merge``). Self-trade cancels
    are completed from the ``stored`` orders (a cancel does not carry the order's side and price),
    and so are the changes of stop orders that fired (valued at the stored order's price, as its
    exposure was reserved); an order not stored (not one of the platform's) is skipped."""
    fired = set(outcome.fired.values())
    changes: list[RestingChange] = []
    for change in outcome.others:
        if change.order_id not in fired:
            changes.append(change)
        elif (price := _valuation(stored.get(change.order_id), instruments)) is not None:
            changes.append(replace(change, price=price))
    for cancel in outcome.self_trade_cancels:
        order = stored.get(cancel.order_id)
        price = _valuation(order, instruments)
        if order is None or price is None:
            continue
        changes.append(
            RestingChange(
                order_id=cancel.order_id,
                account=cancel.account,
                side=order.side,
                symbol=order.symbol,
                price=price,
                seq=cancel.seq,
                leaves_before=cancel.cancelled_quantity,
                leaves_after=0,
                cancelled=True,
                reason=cancel.reason,
            )
        )
    return merge(changes)


def _valuation(order: OrderRecord | None, instruments: Mapping[str, Instrument]) -> Decimal | None:
    """The price an order's exposure is valued at: its limit, or a market order's reference."""
    if order is None or order.symbol not in instruments:
        return None
    ticks = order.valuation_ticks()
    return None if ticks is None else instruments[order.symbol].to_price(ticks)
