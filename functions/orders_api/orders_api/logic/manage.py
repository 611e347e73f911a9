"""Changes to an existing order: cancel (DELETE), replace (PATCH) and compliance approval."""

from __future__ import annotations

from collections.abc import Callable

from meridian.domain import CancelReason, Instrument, RejectReason
from meridian.events import OrderCancelled
from meridian.orders.answers import Outcome, interpret, rejected_event
from meridian.orders.record import LIVE_ON_NODE, Approval, OrderRecord, utc_now
from meridian.protocol import Cancel, Replace
from orders_api import risk
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeAnswer, NodeOutcomeUnknown, NodeUnavailable
from orders_api.errors import ConflictError, OrderRefusedError
from orders_api.logic.common import (
    check_quantity,
    instrument_for,
    node_unavailable,
    price_ticks,
    record_outcome,
    visible_order,
)
from orders_api.logic.limits import (
    account_limits,
    limited_growth,
    order_reads,
    reserve_with_seeding,
    risk_inputs,
)
from orders_api.models import ApprovalRequest, OrderOut, ReplaceRequest
from orders_api.records import order_out
from orders_api.services import Services


def _own_open_order(services: Services, caller: Caller, order_id: str) -> OrderRecord:
    caller.require(Action.MANAGE_OWN)
    record = visible_order(services, caller, order_id)
    if record.status == "UNCONFIRMED":
        raise ConflictError(
            "ORDER_STATE_UNKNOWN",
            "the node has not confirmed this order; repeat its submission to learn its state first",
        )
    if not record.is_open:
        raise ConflictError("ORDER_NOT_OPEN", f"the order is {record.status}")
    return record


def _exchange(
    services: Services, record: OrderRecord, request: Cancel | Replace, instrument: Instrument
) -> tuple[NodeAnswer, Outcome]:
    try:
        answer = services.gateway.send(record.symbol, request)
    except (NodeUnavailable, NodeOutcomeUnknown) as exc:
        raise node_unavailable(services, exc) from exc
    return answer, interpret(record, answer.messages, instrument, utc_now(), answer.node, answer.replaced)


def _changed_meanwhile() -> ConflictError:
    return ConflictError("ORDER_STATE_CHANGED", "the order changed while this request ran; read it and retry")


def cancel_order(services: Services, caller: Caller, order_id: str) -> OrderOut:
    """AWS round trips: the order's read, then (after the node) one PutEvents and one transaction."""
    record = _own_open_order(services, caller, order_id)
    instrument = instrument_for(services, record.symbol)
    if record.status == "PENDING_APPROVAL":  # never reached the node: cancelled here
        cancelled = record.evolve(
            status="CANCELLED", leaves_quantity=0, cancel_reason=CancelReason.USER.name, updated_at=utc_now()
        )
        event = OrderCancelled(
            event_id=f"{record.order_id}:cancelled:approval",
            occurred_at=cancelled.updated_at,
            order_id=record.order_id,
            client_order_id=record.client_order_id,
            account=record.account,
            symbol=record.symbol,
            cancelled_quantity=record.quantity,
            reason=CancelReason.USER.name,
            node_seq=0,
        )
        written, _ = record_outcome(services, record, Outcome(cancelled, events=[event]))
        if not written:  # the order flow routed or ended it meanwhile
            raise _changed_meanwhile()
        return order_out(cancelled, instrument)
    if record.status not in LIVE_ON_NODE or record.node_order_id is None:
        raise ConflictError("ORDER_NOT_OPEN", f"the order is {record.status}")
    request = Cancel(0, record.account, record.symbol, record.node_order_id)
    answer, outcome = _exchange(services, record, request, instrument)
    if outcome.rejected is not None:
        raise ConflictError(
            outcome.rejected.name, "the matching node refused the cancel: the order is no longer open"
        )
    _, stored = record_outcome(services, record, outcome, _rederive(answer, instrument))
    return order_out(stored, instrument)


def _rederive(answer: NodeAnswer, instrument: Instrument) -> Callable[[OrderRecord], Outcome]:
    """The node's answer applied to the order as stored now (another answer was recorded first)."""
    return lambda current: interpret(
        current, answer.messages, instrument, utc_now(), answer.node, answer.replaced
    )


def replace_order(services: Services, caller: Caller, order_id: str, change: ReplaceRequest) -> OrderOut:
    """AWS round trips: the order's read; the last trade (with the account's limits when not cached);
    a reservation only if the change grows towards a limit; after the node, PutEvents and one transaction."""
    record = _own_open_order(services, caller, order_id)
    if record.status == "PENDING_TRIGGER":
        raise ConflictError(
            "REPLACE_NOT_ALLOWED",
            "a stop order waiting for its trigger cannot be replaced: cancel it and send a new one",
        )
    if record.status not in LIVE_ON_NODE or record.node_order_id is None or record.price_ticks is None:
        raise ConflictError(
            "REPLACE_NOT_ALLOWED", f"a {record.status} {record.type} order cannot be replaced"
        )
    instrument = instrument_for(services, record.symbol)
    leaves = change.quantity if change.quantity is not None else record.leaves_quantity
    check_quantity(instrument, leaves)
    ticks = price_ticks(instrument, change.price) if change.price is not None else record.price_ticks
    reference, last_ticks = order_reads(services, record, instrument)
    limits = account_limits(services, reference)
    # The new leaves are checked like a new order's; what it holds open is reserved if it grows.
    intent = risk.OrderIntent(record.account, record.symbol, record.side, leaves, ticks)
    decision = risk.check(intent, instrument, risk_inputs(services, reference, limits, last_ticks))
    if decision.route is risk.Route.APPROVAL:
        raise OrderRefusedError(
            RejectReason.REPLACE_NOT_ALLOWED, "a change this large needs a new order and approval"
        )
    target = record.evolve(leaves_quantity=leaves, price_ticks=ticks)
    growth = limited_growth(target.exposure(instrument) - record.exposure(instrument), limits)
    if not growth.is_zero:
        breach = reserve_with_seeding(services, record.account, growth, limits)
        if breach is not None:
            raise risk.exposure_refused(*breach)
    request = Replace(0, record.account, record.symbol, record.node_order_id, leaves, ticks)
    # Node unreachable or silent: the change may have happened, so a reservation stays (it errs
    # towards the limit, never past it).
    answer, outcome = _exchange(services, record, request, instrument)
    if outcome.rejected is not None:
        services.orders.release(record.account, growth)
        raise OrderRefusedError(
            outcome.rejected, f"the matching node refused the change: {outcome.rejected.name}"
        )
    written, stored = record_outcome(
        services, record, outcome, _rederive(answer, instrument), reserved=growth
    )
    return order_out(stored.evolve(fills=tuple(outcome.fills) if written else ()), instrument)


def decide_approval(services: Services, caller: Caller, order_id: str, decision: ApprovalRequest) -> OrderOut:
    """Answer the order flow waiting on a held order's approval, then record the decision.

    ``meridian.approvals`` errors (no pending approval, self-approval, decided or expired already)
    propagate before the order is written; ``errors.install`` maps them to 404, 403 and 409.
    """
    caller.require(Action.APPROVE)
    record = visible_order(services, caller, order_id)
    if record.status != "PENDING_APPROVAL" or record.approval is not None:
        raise ConflictError("NOT_PENDING_APPROVAL", f"the order is {record.status} and awaits no decision")
    instrument = instrument_for(services, record.symbol)
    now = utc_now()
    services.approvals.decide(record.order_id, decision.decision, caller.principal, decision.comment, now)
    approval = Approval(
        decision=decision.decision, actor=caller.principal, comment=decision.comment, decided_at=now
    )
    if decision.decision == "APPROVE":
        decided = record.evolve(approval=approval, updated_at=now)
        _, stored = record_outcome(services, record, Outcome(decided))
        return order_out(stored, instrument)
    reason = RejectReason.COMPLIANCE_REJECTED
    rejected = record.evolve(
        approval=approval, status="REJECTED", reject_reason=reason.name, leaves_quantity=0, updated_at=now
    )
    event = rejected_event(record, reason.name, now, decision.comment)
    _, stored = record_outcome(services, record, Outcome(rejected, events=[event]))
    return order_out(stored, instrument)
