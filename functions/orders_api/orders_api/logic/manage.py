"""Changes to an existing order: cancel (DELETE), replace (PATCH) and compliance approval."""

from __future__ import annotations

from meridian.domain import CancelReason, Instrument, RejectReason
from meridian.events import OrderCancelled
from meridian.protocol import Cancel, Replace
from orders_api import risk
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.errors import ConflictError, OrderRefusedError
from orders_api.logic.answers import Outcome, interpret, rejected_event
from orders_api.logic.common import (
    check_quantity,
    instrument_for,
    node_unavailable,
    price_ticks,
    record_outcome,
    visible_order,
)
from orders_api.logic.submit import risk_inputs
from orders_api.models import Approval, ApprovalRequest, OrderOut, ReplaceRequest
from orders_api.records import LIVE_ON_NODE, OrderRecord, utc_now
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
) -> Outcome:
    try:
        answer = services.gateway.send(record.symbol, request)
    except (NodeUnavailable, NodeOutcomeUnknown) as exc:
        raise node_unavailable(services, exc) from exc
    return interpret(record, answer, instrument, utc_now())


def cancel_order(services: Services, caller: Caller, order_id: str) -> OrderOut:
    record = _own_open_order(services, caller, order_id)
    instrument = instrument_for(services, record.symbol)
    if record.status == "PENDING_APPROVAL":  # never reached the node: cancelled here
        cancelled = record.evolve(status="CANCELLED", leaves_quantity=0, updated_at=utc_now())
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
        record_outcome(services, Outcome(cancelled, events=[event]))
        return cancelled.to_out(instrument)
    if record.status not in LIVE_ON_NODE or record.node_order_id is None:
        raise ConflictError("ORDER_NOT_OPEN", f"the order is {record.status}")
    outcome = _exchange(
        services, record, Cancel(0, record.account, record.symbol, record.node_order_id), instrument
    )
    if outcome.rejected is not None:
        raise ConflictError(
            outcome.rejected.name, "the matching node refused the cancel: the order is no longer open"
        )
    record_outcome(services, outcome)
    return outcome.record.to_out(instrument)


def replace_order(services: Services, caller: Caller, order_id: str, change: ReplaceRequest) -> OrderOut:
    record = _own_open_order(services, caller, order_id)
    if record.status not in LIVE_ON_NODE or record.node_order_id is None or record.price_ticks is None:
        raise ConflictError(
            "REPLACE_NOT_ALLOWED", f"a {record.status} {record.type} order cannot be replaced"
        )
    instrument = instrument_for(services, record.symbol)
    leaves = change.quantity if change.quantity is not None else record.leaves_quantity
    check_quantity(instrument, leaves)
    ticks = price_ticks(instrument, change.price) if change.price is not None else record.price_ticks
    # The new leaves are risk-checked like a new order, except for the open-order count (unchanged).
    changed = record.evolve(quantity=leaves, price_ticks=ticks)
    intent = risk.OrderIntent(record.account, record.symbol, record.side, leaves, ticks)
    decision = risk.check(intent, instrument, risk_inputs(services, changed, instrument, open_orders=0))
    if decision.route is risk.Route.APPROVAL:
        raise OrderRefusedError(
            RejectReason.REPLACE_NOT_ALLOWED, "a change this large needs a new order and approval"
        )
    request = Replace(0, record.account, record.symbol, record.node_order_id, leaves, ticks)
    outcome = _exchange(services, record, request, instrument)
    if outcome.rejected is not None:
        raise OrderRefusedError(
            outcome.rejected, f"the matching node refused the change: {outcome.rejected.name}"
        )
    record_outcome(services, outcome)
    return outcome.record.evolve(fills=tuple(outcome.fills)).to_out(instrument)


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
        record_outcome(services, Outcome(decided))
        return decided.to_out(instrument)
    reason = RejectReason.COMPLIANCE_REJECTED
    rejected = record.evolve(
        approval=approval, status="REJECTED", reject_reason=reason.name, leaves_quantity=0, updated_at=now
    )
    event = rejected_event(record, reason.name, now, decision.comment)
    record_outcome(services, Outcome(rejected, events=[event]))
    return rejected.to_out(instrument)
