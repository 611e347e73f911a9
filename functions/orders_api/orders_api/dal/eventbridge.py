"""Lifecycle events to EventBridge: one PutEvents batch per request, failed entries retried.

Chunks of 10 and the retries of refused entries are the shared layer's
(:func:`meridian.eventbridge.put_events_with_retries`). What still fails goes to the dead-letter
queue for replay, and if there is no queue or the queue refuses too, ``EventDeliveryError`` is
raised: an event is never silently dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from meridian.eventbridge import MAX_ENTRIES_PER_CALL, Undelivered, put_events_with_retries
from meridian.events import EventDetail, put_events_entry

logger = Logger(child=True)


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
        failed = put_events_with_retries(self._events, entries, self._sleep).undelivered
        if failed:
            self._dead_letter(failed)

    def _dead_letter(self, failed: list[Undelivered]) -> None:
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
                    {"Id": str(i), "MessageBody": json.dumps({"entry": f.entry, "error": f.error})}
                    for i, f in enumerate(chunk)
                ],
            )
            if answer.get("Failed"):
                raise EventDeliveryError(f"dead-letter queue refused {len(answer['Failed'])} events")
