"""Compliance approval of held orders, shared by the order-flow function and the order API.

``approval``: requesting a decision (the state machine's waiting step) and submitting one (the
order API's route); ``store``: the OrderApprovals table; ``models``: the decision, its outcome and
the pending approval (``store`` and ``approval`` both read it; neither imports the other's caller).
"""

from meridian.approvals.approval import (
    ApprovalAlreadyDecidedError,
    ApprovalAlreadyRequestedError,
    ApprovalError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    SelfApprovalError,
    extend_review,
    request_approval,
    submit_decision,
)
from meridian.approvals.models import ApprovalOutcome, Decision, PendingApproval
from meridian.approvals.store import DynamoApprovalStore

__all__ = [
    "ApprovalAlreadyDecidedError",
    "ApprovalAlreadyRequestedError",
    "ApprovalError",
    "ApprovalExpiredError",
    "ApprovalNotFoundError",
    "ApprovalOutcome",
    "Decision",
    "DynamoApprovalStore",
    "PendingApproval",
    "SelfApprovalError",
    "extend_review",
    "request_approval",
    "submit_decision",
]
