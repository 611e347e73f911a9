"""Compliance alerts on the ComplianceAlerts SNS topic: one message per finding.

Message attributes carry the rule and severity so subscribers can filter (e.g. HIGH to paging).
"""

from __future__ import annotations

import json
from typing import Any

from .rules import Finding

SUBJECT_LIMIT = 100


def alert_message(finding: Finding) -> dict[str, Any]:
    """The SNS ``Publish`` arguments for ``finding`` (without the topic)."""
    subject = f"[{finding.severity}] {finding.rule} {finding.account} {finding.symbol or ''}".strip()
    body = {
        "finding_id": finding.finding_id,
        "rule": finding.rule,
        "severity": finding.severity,
        "account": finding.account,
        "symbol": finding.symbol,
        "event_id": finding.event_id,
        "occurred_at": finding.occurred_at.isoformat(),
        "summary": finding.summary,
        "details": finding.details,
    }
    return {
        "Subject": subject.encode("ascii", "replace").decode()[:SUBJECT_LIMIT],
        "Message": json.dumps(body, sort_keys=True),
        "MessageAttributes": {
            "rule": {"DataType": "String", "StringValue": finding.rule},
            "severity": {"DataType": "String", "StringValue": finding.severity},
        },
    }


class SnsAlerts:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client, self.topic_arn = client, topic_arn

    def send(self, finding: Finding) -> None:
        self.client.publish(TopicArn=self.topic_arn, **alert_message(finding))
