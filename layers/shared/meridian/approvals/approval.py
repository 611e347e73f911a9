"""Compliance approval: the waiting side (request) and the deciding side (the order API's route).

Shared by the order-flow function (which requests approvals) and the order API (which decides them).

The state machine's approval step is a ``.waitForTaskToken`` task: :func:`request_approval` records
the pending approval (order id -> task token, deadline) in the OrderApprovals table and sends the
compliance officers an SNS notice naming the order and the API route that decides it. The token
stays in the table: anyone holding it and ``states:SendTaskSuccess`` could approve the order, so it
goes to no topic, mailbox or log. The execution then waits.

The order API's ``POST /orders/{id}/approval`` route calls :func:`submit_decision`, which records
the decision exactly once (conditional write) and answers the waiting task: ``SendTaskSuccess``
for APPROVE, ``SendTaskFailure`` (error ``ComplianceRejected``) for REJECT. :func:`extend_review`
sends a heartbeat while an officer is still reviewing. Errors map to HTTP codes in the API:
not found 404, self-approval 403 (the same person, whichever role they use: ``meridian.people``),
already decided or expired 409.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from meridian.aws_clients import client, error_code
from meridian.people import person_of, same_person

from .models import APPROVED, EXPIRED, PENDING, REJECTED, ApprovalOutcome, Decision, PendingApproval
from .store import DynamoApprovalStore

REJECTED_ERROR = "ComplianceRejected"
_GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
TABLE_ENV = "ORDER_APPROVALS_TABLE"
DEFAULT_TABLE = "meridian-order-approvals"


class ApprovalError(Exception):
    """Base of the decision errors the order API maps to HTTP answers."""


class ApprovalNotFoundError(ApprovalError):
    """No approval was requested for this order."""


class ApprovalAlreadyDecidedError(ApprovalError):
    """The approval was decided (or expired) already."""


class ApprovalExpiredError(ApprovalAlreadyDecidedError):
    """The waiting step timed out: the order was rejected for APPROVAL_TIMEOUT."""


class SelfApprovalError(ApprovalError):
    """The submitter of an order cannot approve it (four eyes)."""


class ApprovalAlreadyRequestedError(ApprovalError):
    """Another execution already asked for a decision on this order (a duplicate start)."""


class ApprovalStore(Protocol):
    def create_pending(self, pending: PendingApproval, summary: dict[str, Any]) -> bool: ...

    def get(self, order_id: str) -> PendingApproval | None: ...

    def decide(self, order_id: str, status: str, reviewer: str, comment: str, at: datetime) -> bool: ...


class Notifier(Protocol):
    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---- the waiting side -------------------------------------------------------------------------------


def notice(order: dict[str, Any], reasons: list[str], deadline: datetime, api_url: str) -> str:
    """The text compliance officers receive: the order, why it waits, and how to decide it (the API
    route, which checks who decides). The task token is never in it."""
    route = (
        f"{api_url.rstrip('/')}/orders/{order['order_id']}/approval"
        if api_url
        else f"/orders/{order['order_id']}/approval"
    )
    lines = [
        f"Order {order['order_id']} needs a compliance decision before {deadline.isoformat()}.",
        f"  account {order['account']}, {order['side']} {order['quantity']} {order['symbol']} "
        f"({order.get('type', 'LIMIT')}, price ticks {order.get('price_ticks')}), "
        f"submitted by {order.get('submitted_by') or '-'}",
        *(f"  reason: {reason}" for reason in reasons),
        f'Decide: POST {route} with {{"decision": "APPROVE"}} or {{"decision": "REJECT", "comment": "..."}}',
        "Without a decision by the deadline the order is rejected (APPROVAL_TIMEOUT).",
    ]
    return "\n".join(lines)


def request_approval(
    request: dict[str, Any],
    store: ApprovalStore,
    notifier: Notifier,
    api_url: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record the pending approval and notify the officers (the task then waits for the token)."""
    order, token = request["order"], str(request["task_token"])
    at = now or utc_now()
    deadline = at + timedelta(seconds=int(request["timeout_seconds"]))
    pending = PendingApproval(
        order_id=order["order_id"],
        task_token=token,
        status=PENDING,
        execution_id=str(request.get("execution_id", "")),
        account=order["account"],
        submitted_by=order.get("submitted_by", ""),
        expires_at=deadline.isoformat(),
    )
    reasons = list(request.get("reasons", []))
    summary = {"symbol": order["symbol"], "notional": str(request.get("notional", "")), "reasons": reasons}
    if not store.create_pending(pending, summary):
        raise ApprovalAlreadyRequestedError(f"order {pending.order_id} already has an approval request")
    notifier.publish(
        f"Approval needed: order {pending.order_id}"[:100],
        notice(order, reasons, deadline, api_url),
        {"order_id": pending.order_id, "symbol": order["symbol"]},
    )
    return {"order_id": pending.order_id, "expires_at": pending.expires_at}


# ---- the deciding side (called by the order API) ------------------------------------------------


def submit_decision(
    order_id: str,
    decision: Decision,
    reviewer: str,
    comment: str = "",
    *,
    store: ApprovalStore | None = None,
    sfn: Any = None,
    now: datetime | None = None,
) -> ApprovalOutcome:
    """Record a compliance decision and answer the waiting state machine (exactly once)."""
    store = store or default_store()
    sfn = sfn or client("stepfunctions")
    pending = store.get(order_id)
    if pending is None:
        raise ApprovalNotFoundError(f"no approval was requested for order {order_id}")
    _require_pending(pending)
    # Four eyes compare people: one person holding the trader and the compliance role is still one.
    if same_person(reviewer, pending.submitted_by) or reviewer == pending.account:
        raise SelfApprovalError(f"{person_of(reviewer)} submitted order {order_id} and cannot decide on it")
    at = now or utc_now()
    status = APPROVED if decision == "APPROVE" else REJECTED
    if not store.decide(order_id, status, reviewer, comment, at):
        raise ApprovalAlreadyDecidedError(f"the approval of order {order_id} was decided concurrently")
    outcome = ApprovalOutcome(
        order_id=order_id, decision=decision, reviewer=reviewer, comment=comment, decided_at=at.isoformat()
    )
    try:
        if decision == "APPROVE":
            sfn.send_task_success(taskToken=pending.task_token, output=outcome.model_dump_json())
        else:
            cause = json.dumps({"reviewer": reviewer, "comment": comment, "decided_at": outcome.decided_at})
            sfn.send_task_failure(taskToken=pending.task_token, error=REJECTED_ERROR, cause=cause)
    except Exception as exc:
        if error_code(exc) in _GONE:
            store.decide(order_id, EXPIRED, reviewer, f"decision arrived after the deadline: {comment}", at)
            raise ApprovalExpiredError(
                f"the approval of order {order_id} expired before the decision"
            ) from exc
        raise
    return outcome


def extend_review(order_id: str, *, store: ApprovalStore | None = None, sfn: Any = None) -> None:
    """Tell the waiting step a reviewer is on it (a heartbeat; the overall deadline still holds)."""
    store = store or default_store()
    pending = store.get(order_id)
    if pending is None:
        raise ApprovalNotFoundError(f"no approval was requested for order {order_id}")
    _require_pending(pending)
    try:
        (sfn or client("stepfunctions")).send_task_heartbeat(taskToken=pending.task_token)
    except Exception as exc:
        if error_code(exc) in _GONE:
            raise ApprovalExpiredError(f"the approval of order {order_id} expired") from exc
        raise


def _require_pending(pending: PendingApproval) -> None:
    if pending.status == EXPIRED:
        raise ApprovalExpiredError(
            f"the approval of order {pending.order_id} expired: the order was rejected"
        )
    if pending.status != PENDING:
        raise ApprovalAlreadyDecidedError(f"the approval of order {pending.order_id} is {pending.status}")


def default_store() -> ApprovalStore:
    """The OrderApprovals table named by ``ORDER_APPROVALS_TABLE`` (callers usually pass their own)."""
    return DynamoApprovalStore(client("dynamodb"), os.environ.get(TABLE_ENV, DEFAULT_TABLE))
