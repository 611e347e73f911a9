"""What a stream publisher hands a sink, and what a sink answers.

A sink either answers with the records it could not deliver (a plain list: in-memory and test
sinks), or with a :class:`Delivery` that also says what it chose not to send yet (its shard's
write budget was spent: the records are ``deferred`` and go back to the front of their queue),
and which droppable records it dropped because a newer record of the same key replaced them
(``superseded``: book updates are conflated under pressure, trades never are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record for a stream; ``payload`` is the JSON object consumers read."""

    partition_key: str
    payload: dict[str, Any]  # JSON: ints, strings, and [[price, quantity], ...] levels
    seq: int  # the input it comes from
    droppable: bool = False

    def to_json(self) -> bytes:
        """Compact JSON, UTF-8 (orjson: about 15x the standard library on these small objects,
        which every record of a busy stream pays once)."""
        return orjson.dumps(self.payload)


@dataclass(slots=True)
class Delivery:
    """A sink's answer for one batch: every record not listed here was delivered.

    Per partition key, what was delivered is always a prefix of the batch's records of that key
    (in seq order): nothing of a key is sent after one of its records that failed or was deferred.
    """

    failed: list[StreamRecord] = field(default_factory=list)  # refused after the sink's own retries
    deferred: list[StreamRecord] = field(default_factory=list)  # not sent: no write budget left
    superseded: list[StreamRecord] = field(default_factory=list)  # droppable, replaced by a newer one
    retry_after: float = 0.0  # seconds until the deferred records' shards can take more
    throttled: int = 0  # user records the stream throttled (then deferred or retried)


class StreamSink(Protocol):
    def put(self, records: Sequence[StreamRecord]) -> Sequence[StreamRecord] | Delivery:
        """Deliver ``records``; return those that could not be delivered (empty on success), or a
        :class:`Delivery`."""
