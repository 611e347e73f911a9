"""POST /orders: validate, run pre-trade risk, send to the matching node, record, announce.

Retries never make a second order, at two levels:

1. Powertools Idempotency, keyed on (account, Idempotency-Key or client_order_id), stores the
   first answer and returns it to every retry; a retry with a different body is refused.
2. The order id is derived from (account, client order id). When the node did not answer in time,
   the order is recorded as UNCONFIRMED (it may be live on the node) and the client gets 503; the
   idempotency record is dropped with the error, so the client's retry runs again, finds the
   UNCONFIRMED order and re-sends the same NewOrder. The node answers a client order id it already
   has with that order's Ack flagged DUPLICATE, so the resend learns the outcome instead of trading
   twice. Without either key there is nothing to recognise a retry by: the client's choice.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from meridian.domain import Instrument, OrderType, SelfTradePrevention, Side, TimeInForce
from meridian.events import OrderPendingApproval
from meridian.executions import order_id_for
from meridian.protocol import ORDER_FLAG_POST_ONLY, ORDER_FLAG_STP_SHIFT, NewOrder
from orders_api import risk
from orders_api.auth import Action, Caller
from orders_api.config import settings
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.dal.interfaces import RiskLimits
from orders_api.errors import (
    ConflictError,
    OrderRefusedError,
    RequestInProgressError,
    ServiceUnavailableError,
    UnprocessableError,
)
from orders_api.logic.answers import interpret, rejected_event
from orders_api.logic.common import (
    check_quantity,
    instrument_for,
    node_unavailable,
    price_ticks,
    record_outcome,
)
from orders_api.models import ErrorResponse, OrderOut, OrderRequest
from orders_api.records import OrderRecord, utc_now
from orders_api.services import Services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord


class SubmitAnswer(BaseModel):
    """The answer to POST /orders, as stored for idempotent replays."""

    status_code: int
    order: OrderOut | None = None
    error: ErrorResponse | None = None
    replayed: bool = False


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True} if isinstance(response, dict) else response


@cache
def idempotency_config() -> IdempotencyConfig:
    # Powertools' idempotency package imports boto3: loaded on the first keyed order, not at import.
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig  # noqa: PLC0415

    return IdempotencyConfig(
        event_key_jmespath="[account, key]",
        payload_validation_jmespath="order",
        expires_after_seconds=settings().idempotency_ttl_seconds,
        response_hook=_mark_replayed,
    )


def submit_order(
    services: Services, caller: Caller, request: OrderRequest, key: str | None, context: LambdaContext | None
) -> SubmitAnswer:
    caller.require(Action.SUBMIT)
    key = key or request.client_order_id
    if key is None:
        return _submit(services=services, caller=caller, request=request, key=None)
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415 - boto3 behind it
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if context is not None:
        idempotency_config().register_lambda_context(context)  # in-progress records expire with the call
    submission = {"account": caller.account, "key": key, "order": request.model_dump(mode="json")}
    try:
        stored = _idempotent(services)(
            submission=submission, services=services, caller=caller, request=request, key=key
        )
    except IdempotencyAlreadyInProgressError:
        raise RequestInProgressError(
            "REQUEST_IN_PROGRESS", "a request with this idempotency key is still in progress; retry shortly"
        ) from None
    except IdempotencyValidationError:
        raise UnprocessableError(
            "IDEMPOTENCY_KEY_REUSED", "this idempotency key was first used with a different order"
        ) from None
    return SubmitAnswer.model_validate(stored)


@cache
def _idempotent_for(persistence: Any) -> Any:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function  # noqa: PLC0415

    return idempotent_function(
        _submit_json,
        data_keyword_argument="submission",
        persistence_store=persistence,
        config=idempotency_config(),
    )


def _idempotent(services: Services) -> Any:
    return _idempotent_for(services.idempotency)


def _submit_json(submission: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return _submit(**kwargs).model_dump(mode="json")


def client_order_id_for(key: str | None) -> str:
    """The client order id of an order sent without one: from the idempotency key when there is one
    (so a retry names the same order), else random."""
    if key is None:
        return uuid.uuid4().hex[:20]
    return "K" + hashlib.sha256(key.encode()).hexdigest()[:19]


def _order_flags(request: OrderRequest) -> int:
    stp = int(SelfTradePrevention[request.self_trade_prevention])
    return (ORDER_FLAG_POST_ONLY if request.post_only else 0) | (stp << ORDER_FLAG_STP_SHIFT)


def _candidate(caller: Caller, request: OrderRequest, instrument: Instrument, key: str | None) -> OrderRecord:
    check_quantity(instrument, request.quantity)
    ticks = price_ticks(instrument, request.price) if request.price is not None else None
    account = caller.account or ""
    client_order_id = request.client_order_id or client_order_id_for(key)
    now = utc_now()
    return OrderRecord(
        order_id=order_id_for(account, client_order_id),
        account=account,
        client_order_id=client_order_id,
        symbol=request.symbol,
        side=request.side,
        type=request.type,
        time_in_force=request.time_in_force,
        quantity=request.quantity,
        price_ticks=ticks,
        status="UNCONFIRMED",
        created_at=now,
        updated_at=now,
        order_flags=_order_flags(request),
        leaves_quantity=request.quantity,
        submitted_by=caller.principal,
    )


def answer_for(record: OrderRecord, instrument: Instrument, replayed: bool = False) -> SubmitAnswer:
    order = record.to_out(instrument)
    if record.status == "PENDING_APPROVAL":
        return SubmitAnswer(status_code=202, order=order, replayed=replayed)
    if record.status == "REJECTED":
        reason = record.reject_reason or "REJECTED"
        error = ErrorResponse(
            error=reason, message=f"the order was rejected: {reason}", order_id=record.order_id
        )
        return SubmitAnswer(status_code=422, error=error, replayed=replayed)
    return SubmitAnswer(status_code=201, order=order, replayed=replayed)


def _submit(services: Services, caller: Caller, request: OrderRequest, key: str | None) -> SubmitAnswer:
    instrument = instrument_for(services, request.symbol)
    candidate = _candidate(caller, request, instrument, key)
    existing = services.orders.get(candidate.order_id)
    if existing is not None:
        if not existing.same_order_as(candidate):
            raise ConflictError("DUPLICATE_CLIENT_ORDER_ID", "this client order id names a different order")
        if existing.status != "UNCONFIRMED":
            return answer_for(existing, instrument, replayed=True)
        return _send(services, existing, instrument)  # resolve an earlier unanswered send
    try:
        decision = risk.check(_intent(candidate), instrument, _risk_inputs(services, candidate, instrument))
    except OrderRefusedError as refused:
        # Surveillance and compliance see pre-trade refusals too, not only the node's rejects.
        # Refused attempts are not recorded, so each one is an event of its own.
        event_id = f"risk-rejected-{candidate.order_id}-{candidate.created_at.timestamp():.6f}"
        rejected = rejected_event(candidate, refused.code, candidate.created_at, str(refused), event_id)
        services.events.publish([rejected])
        raise
    if decision.route is risk.Route.APPROVAL:
        return _hold_for_approval(services, candidate, instrument, decision)
    return _send(services, candidate, instrument)


def _intent(record: OrderRecord) -> risk.OrderIntent:
    return risk.OrderIntent(record.account, record.symbol, record.side, record.quantity, record.price_ticks)


def account_limits(services: Services, account: str) -> RiskLimits:
    s = services.settings
    return services.reference.risk_limits(account) or RiskLimits(
        max_order_quantity=s.default_max_order_quantity,
        max_notional=s.default_max_notional,
        max_open_orders=s.default_max_open_orders,
    )


def risk_inputs(
    services: Services, record: OrderRecord, instrument: Instrument, open_orders: int
) -> risk.RiskInputs:
    limits = account_limits(services, record.account)
    position = None
    if record.symbol in limits.position_limits:
        try:
            position = services.ledger.position(record.account, record.symbol)
        except Exception as exc:  # fail closed: a position limit that cannot be checked refuses the order
            raise ServiceUnavailableError(
                "LEDGER_UNAVAILABLE", "positions cannot be read to check the limit"
            ) from exc
    tape = services.market_data.last_trades(record.symbol, 1)
    last_ticks = instrument.to_ticks(tape[0].price) if tape else None
    global_control, symbol_control = services.reference.controls(record.symbol)
    return risk.RiskInputs(
        limits=limits,
        open_orders=open_orders,
        position=position,
        last_trade_ticks=last_ticks,
        global_control=global_control,
        symbol_control=symbol_control,
        large_order_notional=services.settings.large_order_notional,
    )


def _risk_inputs(services: Services, record: OrderRecord, instrument: Instrument) -> risk.RiskInputs:
    return risk_inputs(services, record, instrument, services.orders.count_open(record.account))


def _hold_for_approval(
    services: Services, record: OrderRecord, instrument: Instrument, decision: risk.RiskDecision
) -> SubmitAnswer:
    held = record.evolve(status="PENDING_APPROVAL")
    if not services.orders.create(held):
        raise ConflictError("DUPLICATE_CLIENT_ORDER_ID", "this client order id is in use")
    event = OrderPendingApproval(
        event_id=f"{held.order_id}:pending_approval",
        occurred_at=held.created_at,
        client_order_id=held.client_order_id,
        account=held.account,
        symbol=held.symbol,
        side=held.side,
        quantity=held.quantity,
        price=None if held.price_ticks is None else instrument.to_price(held.price_ticks),
        notional=Decimal(decision.notional),
        reason=decision.reason,
    )
    services.events.publish([event])
    return answer_for(held, instrument)


def _new_order(record: OrderRecord) -> NewOrder:
    return NewOrder(
        0,
        record.client_order_id,
        record.account,
        record.symbol,
        int(Side[record.side]),
        int(OrderType[record.type]),
        int(TimeInForce[record.time_in_force]),
        record.order_flags,
        record.quantity,
        record.price_ticks or 0,
    )


def _send(services: Services, record: OrderRecord, instrument: Instrument) -> SubmitAnswer:
    try:
        answer = services.gateway.send(record.symbol, _new_order(record))
    except NodeUnavailable as exc:
        raise node_unavailable(services, exc) from exc  # never sent: nothing to record
    except NodeOutcomeUnknown as exc:
        # Sent, unanswered: the order may be live. Record it as UNCONFIRMED (never as live) so the
        # retry re-sends this very order and learns its fate (see the module docstring).
        services.orders.create(record)
        raise node_unavailable(services, exc) from exc
    outcome = interpret(record, answer, instrument, utc_now())
    record_outcome(services, outcome)
    if outcome.rejected is not None:
        return answer_for(outcome.record, instrument)
    answer_record = outcome.record.evolve(fills=tuple(outcome.fills))
    return SubmitAnswer(status_code=201, order=answer_record.to_out(instrument))
