"""What every queue consumer shares: decoding queued lifecycle events, and poison messages.

A poison message (not JSON, not an EventBridge event, an unknown detail-type or schema version,
a detail that fails its schema) raises :class:`PoisonMessageError` with a one-line reason. The
batch processor reports it as a failed item, so it is retried alone and reaches the queue's DLQ
after ``maxReceiveCount`` receives, while the rest of its batch is processed normally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from pydantic import ValidationError

from meridian.events import EventDetail, UnknownEventError, parse_eventbridge_event

SUPPORTED_SCHEMA_VERSION = 1
DetailT = TypeVar("DetailT", bound=EventDetail)


class PoisonMessageError(ValueError):
    """A message no retry can fix; ``reason`` says why, for the log and the DLQ investigation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_queued_event(body: str) -> EventDetail:
    """The lifecycle event in an SQS message body (an EventBridge envelope)."""
    try:
        detail = parse_eventbridge_event(body)
    except UnknownEventError as exc:
        raise PoisonMessageError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PoisonMessageError(
            f"{exc.title} failed its schema: {exc.error_count()} error(s), first at {where}: {first['msg']}"
        ) from None
    if detail.schema_version != SUPPORTED_SCHEMA_VERSION:
        raise PoisonMessageError(
            f"{detail.detail_type} schema_version {detail.schema_version} is not supported "
            f"(this consumer reads {SUPPORTED_SCHEMA_VERSION})"
        )
    return detail


def expect(detail: EventDetail, kind: type[DetailT]) -> DetailT:
    """``detail`` as ``kind``, or a poison message when a rule routed the wrong type here."""
    if not isinstance(detail, kind):
        raise PoisonMessageError(f"{detail.detail_type} is not a {kind.detail_type} event")
    return detail


def process_batch(
    event: dict[str, Any],
    context: Any,
    record_handler: Callable[..., Any],
    event_type: EventType = EventType.SQS,
) -> PartialItemFailureResponse:
    """Run ``record_handler`` on every record; failed records are reported, never raised.

    Reporting all records of a batch that failed entirely (rather than raising) keeps the Lambda
    error metric for code faults and lets each record count its own receives.
    """
    processor = BatchProcessor(event_type=event_type, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
