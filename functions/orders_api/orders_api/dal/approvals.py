"""The compliance decision on a held order: the OrderApprovals table and the waiting order flow.

``meridian.approvals.submit_decision`` records the decision once and answers the state machine's
waiting task (SendTaskSuccess / SendTaskFailure) with the token stored for the order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from meridian.approvals import ApprovalOutcome, Decision, DynamoApprovalStore, submit_decision


class StepFunctionsApprovalDesk:
    """Decisions over the OrderApprovals table and Step Functions (the client is made on first use)."""

    def __init__(self, dynamodb: Any, table: str, stepfunctions: Callable[[], Any]) -> None:
        self._store = DynamoApprovalStore(dynamodb, table)
        self._stepfunctions = stepfunctions

    def decide(
        self, order_id: str, decision: Decision, reviewer: str, comment: str, at: datetime
    ) -> ApprovalOutcome:
        return submit_decision(
            order_id, decision, reviewer, comment, store=self._store, sfn=self._stepfunctions(), now=at
        )
