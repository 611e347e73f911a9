"""The compliance decision: what an officer may decide and what the approval step returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Decision = Literal["APPROVE", "REJECT"]


class ApprovalOutcome(BaseModel):
    """What the compliance officer decided; the state machine's output of the approval step."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # built on first use

    order_id: str
    decision: Decision
    reviewer: str
    comment: str = ""
    decided_at: str
