"""Lifecycle events to EventBridge: one PutEvents batch per request, failed entries retried.

PutEvents takes at most 10 entries per call, so a request with many fills sends its batch in
chunks of 10. Entries that EventBridge refuses (``FailedEntryCount``) are retried with exponential
backoff; what still fails goes to the dead-letter queue for replay, and if there is no queue or
the queue refuses too, ``EventDeliveryError`` is raised: an event is never silently dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from meridian.events import EventDetail, put_events_entry

logger = Logger(child=True)

MAX_ENTRIES_PER_CALL = 10
RETRY_DELAYS_S = (0.05, 0.2, 0.8)


class EventDeliveryError(RuntimeError):
    """Events that neither EventBridge nor the dead-letter queue accepted."""


class EventBridgePublisher:
    def __init__(
        self,
        events_client: Any,
        bus_name: str,
        sqs_client: Any | None = None,
        dlq_url: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._events = events_client
        self._bus = bus_name
        self._sqs = sqs_client
        self._dlq_url = dlq_url
        self._sleep = sleep

    def publish(self, events: Sequence[EventDetail]) -> None:
        if not events:
            return
        entries = [put_events_entry(event, self._bus) for event in events]
        failed: list[tuple[dict[str, Any], str]] = []
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            failed.extend(self._send_with_retries(entries[start : start + MAX_ENTRIES_PER_CALL]))
        if failed:
            self._dead_letter(failed)

    def _send_with_retries(self, entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        pending = entries
        errors: list[str] = ["not sent"] * len(entries)
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            if attempt:
                self._sleep(RETRY_DELAYS_S[attempt - 1])
            try:
                answer = self._events.put_events(Entries=pending)
            except Exception as exc:
                errors = [repr(exc)] * len(pending)
                continue
            if not answer.get("FailedEntryCount"):
                return []
            results = answer.get("Entries", [])
            retry = [
                (entry, result)
                for entry, result in zip(pending, results, strict=False)
                if result.get("ErrorCode")
            ]
            pending = [entry for entry, _ in retry]
            errors = [f"{r.get('ErrorCode')}: {r.get('ErrorMessage', '')}" for _, r in retry]
            logger.warning("EventBridge refused entries", extra={"failed": len(pending), "attempt": attempt})
            if not pending:
                return []
        return list(zip(pending, errors, strict=True))

    def _dead_letter(self, failed: list[tuple[dict[str, Any], str]]) -> None:
        logger.error("events undeliverable to EventBridge", extra={"count": len(failed)})
        if self._sqs is None or not self._dlq_url:
            raise EventDeliveryError(
                f"{len(failed)} events undeliverable and no dead-letter queue configured"
            )
        for start in range(0, len(failed), MAX_ENTRIES_PER_CALL):
            chunk = failed[start : start + MAX_ENTRIES_PER_CALL]
            answer = self._sqs.send_message_batch(
                QueueUrl=self._dlq_url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps({"entry": entry, "error": error})}
                    for i, (entry, error) in enumerate(chunk)
                ],
            )
            if answer.get("Failed"):
                raise EventDeliveryError(f"dead-letter queue refused {len(answer['Failed'])} events")
