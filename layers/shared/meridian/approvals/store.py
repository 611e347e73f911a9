"""The OrderApprovals table (key ``order_id``): one item per order held for compliance approval.

Attributes: ``status`` (PENDING, APPROVED, REJECTED, EXPIRED), ``task_token`` of the waiting
step, ``execution_id``, ``account``, ``submitted_by``, ``expires_at``, ``requested_at``, the
decision (``reviewer``, ``comment``, ``decided_at``) and ``ttl`` (epoch seconds, 90 days on).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from meridian.aws_clients import error_code

from .models import PENDING, PendingApproval

RETENTION = timedelta(days=90)
# A retry of the same execution's step may write again; another execution may not.
_NEW_OR_SAME_EXECUTION = "attribute_not_exists(order_id) OR (#s = :pending AND execution_id = :execution)"


class DynamoApprovalStore:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def create_pending(self, pending: PendingApproval, summary: dict[str, Any]) -> bool:
        """Create the request; True again for a retry of the same execution, False for another one."""
        now = datetime.now(UTC)
        item = {
            "order_id": {"S": pending.order_id},
            "status": {"S": PENDING},
            "task_token": {"S": pending.task_token},
            "execution_id": {"S": pending.execution_id},
            "account": {"S": pending.account},
            "submitted_by": {"S": pending.submitted_by},
            "expires_at": {"S": pending.expires_at},
            "requested_at": {"S": now.isoformat()},
            "summary": {"S": json.dumps(summary)},
            "ttl": {"N": str(int((now + RETENTION).timestamp()))},
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_NEW_OR_SAME_EXECUTION,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": PENDING},
                    ":execution": {"S": pending.execution_id},
                },
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, order_id: str) -> PendingApproval | None:
        answer = self._db.get_item(
            TableName=self._table, Key={"order_id": {"S": order_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if not item:
            return None

        def text(name: str) -> str:
            return str(item.get(name, {}).get("S", ""))

        return PendingApproval(
            order_id=text("order_id"),
            task_token=text("task_token"),
            status=text("status"),
            execution_id=text("execution_id"),
            account=text("account"),
            submitted_by=text("submitted_by"),
            expires_at=text("expires_at"),
        )

    def decide(self, order_id: str, status: str, reviewer: str, comment: str, at: datetime) -> bool:
        """Move a request out of PENDING (or a decided one to EXPIRED); False when it already left."""
        allowed = [PENDING] if status != "EXPIRED" else [PENDING, "APPROVED", "REJECTED"]
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"order_id": {"S": order_id}},
                UpdateExpression="SET #s = :status, reviewer = :reviewer, #c = :comment, decided_at = :at",
                ConditionExpression="#s IN (" + ", ".join(f":allowed{i}" for i in range(len(allowed))) + ")",
                ExpressionAttributeNames={"#s": "status", "#c": "comment"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":reviewer": {"S": reviewer},
                    ":comment": {"S": comment},
                    ":at": {"S": at.isoformat()},
                    **{f":allowed{i}": {"S": value} for i, value in enumerate(allowed)},
                },
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True
