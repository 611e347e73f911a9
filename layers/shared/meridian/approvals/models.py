"""The compliance decision: what an officer may decide, what the approval step returns, and the
pending approval the OrderApprovals table holds (shared by the approval logic and its store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Decision = Literal["APPROVE", "REJECT"]
PENDING, APPROVED, REJECTED, EXPIRED = "PENDING", "APPROVED", "REJECTED", "EXPIRED"


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """One item of the OrderApprovals table: the order held, its waiting step and its status."""

    order_id: str
    task_token: str
    status: str
    execution_id: str
    account: str
    submitted_by: str
    expires_at: str


class ApprovalOutcome(BaseModel):
    """What the compliance officer decided; the state machine's output of the approval step."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # built on first use

    order_id: str
    decision: Decision
    reviewer: str
    comment: str = ""
    decided_at: str
