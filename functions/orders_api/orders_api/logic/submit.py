"""POST /orders: validate, run pre-trade risk, create the order with its exposure, send, record, announce.

The AWS round trips of an order, one after another (``make bench-api`` counts them):

1. the last trade of the symbol (the price band; a market order's value), read beside the
   account's limits and the symbol's controls when those are not in the warm function's cache;
2. one transaction: the order's item (its lookup folded into a conditional create), its exposure
   reserved against the account's limits (``meridian.exposure``) and, if an Idempotency-Key names
   an order with a client order id of its own, the key's item;
3. the matching node; 4. one PutEvents; 5. one transaction recording the node's answer.

Retries never make a second order. The order id is derived from (account, client order id), and
without a client order id the client order id is derived from the Idempotency-Key, so a retry
finds its order in step 2. The first answer is stored with the order and returned to every retry;
a retry with the same key and a different request is refused. The order is created UNCONFIRMED
before it is sent; if the node did not answer in time the client gets 503 and the order stays
UNCONFIRMED (it may be live): the retry re-sends the same NewOrder, which the node answers with the
existing order flagged DUPLICATE, so the retry learns the outcome instead of trading twice. While a
request is sending an UNCONFIRMED order, a concurrent retry gets 409 REQUEST_IN_PROGRESS. Without
a key there is nothing to recognise a retry by: the client's choice.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel

from meridian.domain import Instrument, RejectReason, SelfTradePrevention
from meridian.events import OrderPendingApproval
from meridian.executions import order_id_for
from meridian.orders.answers import interpret, rejected_event
from meridian.orders.record import OrderRecord, utc_now
from meridian.orders.requests import new_order
from meridian.protocol import ORDER_FLAG_POST_ONLY, ORDER_FLAG_STP_SHIFT
from orders_api import risk
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.dal.interfaces import KeyClaim, Opened, Opening, StoredOrder
from orders_api.errors import (
    ConflictError,
    OrderRefusedError,
    RequestInProgressError,
    ServiceUnavailableError,
    UnprocessableError,
)
from orders_api.logic.common import (
    check_quantity,
    instrument_for,
    node_unavailable,
    price_ticks,
    record_outcome,
)
from orders_api.logic.limits import account_limits, order_reads, risk_inputs, seed_exposure
from orders_api.models import ErrorResponse, OrderOut, OrderRequest
from orders_api.records import order_out
from orders_api.services import Services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

DEFAULT_REMAINING_MS = 10_000  # without a Lambda context: the function's timeout


class SubmitAnswer(BaseModel):
    """The answer to POST /orders, as stored for idempotent replays."""

    status_code: int
    order: OrderOut | None = None
    error: ErrorResponse | None = None
    replayed: bool = False


def client_order_id_for(key: str | None) -> str:
    """The client order id of an order sent without one: from the idempotency key when there is one
    (so a retry names the same order), else random."""
    if key is None:
        return uuid.uuid4().hex[:20]
    return "K" + hashlib.sha256(key.encode()).hexdigest()[:19]


def request_hash(request: OrderRequest) -> str:
    text = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _deadline_ms(context: LambdaContext | None) -> int:
    remaining = context.get_remaining_time_in_millis() if context is not None else DEFAULT_REMAINING_MS
    return _now_ms() + remaining


def submit_order(
    services: Services,
    caller: Caller,
    request: OrderRequest,
    header_key: str | None,
    context: LambdaContext | None,
) -> SubmitAnswer:
    caller.require(Action.SUBMIT)
    key = header_key or request.client_order_id
    instrument = instrument_for(services, request.symbol)
    candidate = _candidate(caller, request, instrument, key)
    hashed = request_hash(request) if key is not None else None
    reference, last_ticks = order_reads(services, candidate, instrument)
    limits = account_limits(services, reference)
    try:
        decision = risk.check(
            _intent(candidate), instrument, risk_inputs(services, reference, limits, last_ticks)
        )
    except OrderRefusedError as refused:
        earlier = _earlier(services, candidate, hashed, instrument) if key else None
        if earlier is not None:  # a retry of an order made before the market moved or a halt
            return earlier
        _announce_refusal(services, candidate, refused)
        raise
    held = decision.route is risk.Route.APPROVAL
    if held and candidate.is_stop:  # the order flow routes plain orders only
        raise OrderRefusedError(
            RejectReason.INVALID_ORDER,
            f"a {candidate.type} order this large would need compliance approval, which stop orders do not"
            " take: send a smaller one, or a LIMIT order",
        )
    record = candidate.evolve(
        status="PENDING_APPROVAL" if held else "UNCONFIRMED",
        reference_ticks=risk.reference_ticks(instrument, last_ticks)
        if candidate.price_ticks is None
        else None,
    )
    first_answer = answer_for(record, instrument).model_dump_json() if held else None
    stored = StoredOrder(record, first_answer, hashed, 0 if held else _deadline_ms(context))
    claim = None
    if header_key is not None and request.client_order_id is not None:
        expires = int(time.time()) + services.settings.idempotency_ttl_seconds
        claim = KeyClaim(f"{candidate.account}#{header_key}", expires)
    opening = Opening(stored, limits.exposure_limits(), claim)
    opened = _open(services, opening)
    if not opened.created:
        return _not_created(services, opening, opened, instrument, context)
    if held:
        return _announce_held(services, record, instrument, decision)
    return _send(services, record, instrument, opening)


def _open(services: Services, opening: Opening) -> Opened:
    """Create the order; an account's first order first adds its ledger positions to its exposure."""
    opened = services.orders.open(opening)
    if opened.breach is None or opened.breach[0] != "NOT_SEEDED" or opened.existing is not None:
        return opened
    seed_exposure(services, opening.stored.record.account)
    opened = services.orders.open(opening)
    if opened.breach is not None and opened.breach[0] == "NOT_SEEDED":
        raise ServiceUnavailableError(
            "EXPOSURE_BUSY", opened.breach[1], services.settings.retry_after_seconds
        )
    return opened


def _not_created(
    services: Services,
    opening: Opening,
    opened: Opened,
    instrument: Instrument,
    context: LambdaContext | None,
) -> SubmitAnswer:
    """The create was refused: a retry (replay or resolve it), a reused key or id, or a limit."""
    hashed = opening.stored.request_hash
    if opened.key_order_id is not None and opened.key_request_hash != hashed:
        raise _key_reused()
    existing = opened.existing
    if existing is None:
        if opened.breach is not None:
            refused = risk.exposure_refused(*opened.breach)
            _announce_refusal(services, opening.stored.record, refused)
            raise refused
        raise ConflictError("DUPLICATE_CLIENT_ORDER_ID", "this idempotency key names another order")
    return _resume(services, existing, opening.stored.record, hashed, instrument, context)


def _resume(
    services: Services,
    existing: StoredOrder,
    candidate: OrderRecord,
    hashed: str | None,
    instrument: Instrument,
    context: LambdaContext | None,
) -> SubmitAnswer:
    """A submission whose order exists: its first answer, or the outcome of its unanswered send."""
    if existing.request_hash and hashed and existing.request_hash != hashed:
        raise _key_reused()
    if not existing.record.same_order_as(candidate):
        raise ConflictError("DUPLICATE_CLIENT_ORDER_ID", "this client order id names a different order")
    if existing.record.status != "UNCONFIRMED":
        return replay(existing, instrument)
    if not services.orders.claim(existing.record.order_id, _deadline_ms(context), _now_ms()):
        raise RequestInProgressError(
            "REQUEST_IN_PROGRESS", "a request with this idempotency key is still in progress; retry shortly"
        )
    return _send(services, existing.record, instrument, opening=None)


def _earlier(
    services: Services, candidate: OrderRecord, hashed: str | None, instrument: Instrument
) -> SubmitAnswer | None:
    """The answer to an earlier submission with this key, if there was one (a refused request's
    retry check: only on the path that refuses)."""
    existing = services.orders.get_stored(candidate.order_id)
    if existing is None:
        return None
    if existing.request_hash and hashed and existing.request_hash != hashed:
        raise _key_reused()
    if not existing.record.same_order_as(candidate) or existing.record.status == "UNCONFIRMED":
        return None
    return replay(existing, instrument)


def replay(existing: StoredOrder, instrument: Instrument) -> SubmitAnswer:
    if existing.answer:
        return SubmitAnswer.model_validate_json(existing.answer).model_copy(update={"replayed": True})
    return answer_for(existing.record, instrument, replayed=True)


def _key_reused() -> UnprocessableError:
    return UnprocessableError(
        "IDEMPOTENCY_KEY_REUSED", "this idempotency key was first used with a different order"
    )


def _announce_refusal(services: Services, candidate: OrderRecord, refused: OrderRefusedError) -> None:
    # Surveillance and compliance see pre-trade refusals too, not only the node's rejects.
    # Refused attempts are not recorded, so each one is an event of its own.
    event_id = f"risk-rejected-{candidate.order_id}-{candidate.created_at.timestamp():.6f}"
    services.events.publish(
        [rejected_event(candidate, refused.code, candidate.created_at, str(refused), event_id)]
    )


def _order_flags(request: OrderRequest) -> int:
    stp = int(SelfTradePrevention[request.self_trade_prevention])
    return (ORDER_FLAG_POST_ONLY if request.post_only else 0) | (stp << ORDER_FLAG_STP_SHIFT)


def _candidate(caller: Caller, request: OrderRequest, instrument: Instrument, key: str | None) -> OrderRecord:
    check_quantity(instrument, request.quantity)
    ticks = price_ticks(instrument, request.price) if request.price is not None else None
    stop_ticks = price_ticks(instrument, request.stop_price, "stop_price") if request.stop_price else None
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
        stop_price_ticks=stop_ticks,
        status="UNCONFIRMED",
        created_at=now,
        updated_at=now,
        order_flags=_order_flags(request),
        leaves_quantity=request.quantity,
        submitted_by=caller.principal,
    )


def answer_for(record: OrderRecord, instrument: Instrument, replayed: bool = False) -> SubmitAnswer:
    order = order_out(record, instrument)
    if record.status == "PENDING_APPROVAL":
        return SubmitAnswer(status_code=202, order=order, replayed=replayed)
    if record.status == "REJECTED":
        reason = record.reject_reason or "REJECTED"
        error = ErrorResponse(
            error=reason, message=f"the order was rejected: {reason}", order_id=record.order_id
        )
        return SubmitAnswer(status_code=422, error=error, replayed=replayed)
    return SubmitAnswer(status_code=201, order=order, replayed=replayed)


def _intent(record: OrderRecord) -> risk.OrderIntent:
    return risk.OrderIntent(record.account, record.symbol, record.side, record.quantity, record.price_ticks)


def _announce_held(
    services: Services, held: OrderRecord, instrument: Instrument, decision: risk.RiskDecision
) -> SubmitAnswer:
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


def _send(
    services: Services, record: OrderRecord, instrument: Instrument, opening: Opening | None
) -> SubmitAnswer:
    """Send the order (``opening``: just created; None: re-sent after an unanswered send)."""
    try:
        answer = services.gateway.send(record.symbol, new_order(record))
    except NodeUnavailable as exc:
        if opening is not None:
            services.orders.discard(opening)  # never sent: as if it had never been submitted
        else:
            services.orders.claim(record.order_id, 0, _now_ms())  # an earlier send may be live: keep it
        raise node_unavailable(services, exc) from exc
    except NodeOutcomeUnknown as exc:
        # Sent, unanswered: the order may be live. It stays UNCONFIRMED (never shown as live) and
        # its retry may resolve it at once (see the module docstring).
        services.orders.claim(record.order_id, 0, _now_ms())
        raise node_unavailable(services, exc) from exc
    outcome = interpret(record, answer.messages, instrument, utc_now(), answer.node, answer.replaced)
    if outcome.rejected is not None:
        result = answer_for(outcome.record, instrument)
    else:
        order = order_out(outcome.record.evolve(fills=tuple(outcome.fills)), instrument)
        result = SubmitAnswer(status_code=201, order=order)
    written, stored = record_outcome(services, record, outcome, answer=result.model_dump_json())
    if written:
        return result
    return answer_for(stored, instrument, replayed=True)  # another request recorded the order first
