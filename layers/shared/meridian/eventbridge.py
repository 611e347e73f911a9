"""PutEvents with retries, for every producer of lifecycle events (the order API, the drop copy).

PutEvents takes at most 10 entries per call, so entries go in chunks of 10, in order. Entries that
EventBridge refuses (``FailedEntryCount``), or a whole call that raises, are retried with
exponential backoff; what still fails is returned with its position and error, so the caller
decides what "undelivered" means (a dead-letter queue, a failed stream record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger

logger = Logger(child=True)

MAX_ENTRIES_PER_CALL = 10
RETRY_DELAYS_S = (0.05, 0.2, 0.8)


class Undelivered(NamedTuple):
    position: int  # in the entries passed to put_events_with_retries
    entry: dict[str, Any]
    error: str


class Delivery(NamedTuple):
    sent: int  # entries submitted (all of them, unless stopped at a failure)
    undelivered: list[Undelivered]  # still refused after the retries, in order

    @property
    def accepted(self) -> int:
        return self.sent - len(self.undelivered)


def put_events_with_retries(
    events_client: Any,
    entries: Sequence[dict[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
    stop_at_first_failure: bool = False,
) -> Delivery:
    """Send ``entries``; the result lists those EventBridge still refused after the retries.

    With ``stop_at_first_failure`` the chunks after the first one that kept a failure are not
    sent (nor counted in ``sent``): for a caller that will resend from its first failure anyway.
    """
    undelivered: list[Undelivered] = []
    sent = 0
    for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
        chunk = list(enumerate(entries[start : start + MAX_ENTRIES_PER_CALL], start))
        undelivered.extend(_send_chunk(events_client, chunk, sleep))
        sent += len(chunk)
        if undelivered and stop_at_first_failure:
            break
    return Delivery(sent, undelivered)


def _send_chunk(
    events_client: Any, chunk: list[tuple[int, dict[str, Any]]], sleep: Callable[[float], None]
) -> list[Undelivered]:
    pending = chunk
    errors = ["not sent"] * len(pending)
    for attempt in range(len(RETRY_DELAYS_S) + 1):
        if attempt:
            sleep(RETRY_DELAYS_S[attempt - 1])
        try:
            answer = events_client.put_events(Entries=[entry for _, entry in pending])
        except Exception as exc:
            errors = [repr(exc)] * len(pending)
            continue
        if not answer.get("FailedEntryCount"):
            return []
        results = answer.get("Entries", [])
        if len(results) != len(pending):  # cannot tell which were refused: all of them again
            errors = [f"{answer['FailedEntryCount']} refused, {len(results)} results"] * len(pending)
            continue
        refused = [
            (item, result) for item, result in zip(pending, results, strict=True) if result.get("ErrorCode")
        ]
        pending = [item for item, _ in refused]
        errors = [f"{r.get('ErrorCode')}: {r.get('ErrorMessage', '')}" for _, r in refused]
        logger.warning("EventBridge refused entries", extra={"failed": len(pending), "attempt": attempt})
        if not pending:
            return []
    return [Undelivered(index, entry, error) for (index, entry), error in zip(pending, errors, strict=True)]
