"""How many AWS round trips a request waits for, one after another, and what they would cost in a region.

A :class:`RoundTripRecorder` attached to boto3 clients (botocore's ``before-call`` / ``after-call``
events, which fire once per API call whatever retries happen inside) records each call's start and
end. :func:`sequential_round_trips` is the longest chain of calls each of which started after the
previous one ended: calls made concurrently count once, calls made one after another add up. That
is what a request's latency pays for, whatever the number of calls.

With ``delay_s`` set, every call takes at least that long (its emulated time, moto's, is padded up
to it): a model of a region where each DynamoDB or EventBridge call costs a few milliseconds.
:func:`modelled` then gives a request's latency in that model: its wall time with each span of
waiting on AWS (calls that overlap wait together) counted as exactly one delay, so an emulated
call slower than the delay does not count against the code. The benchmark
(``bench/api_bench.py``) and the local platform use it; the unit tests use the counts.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_STARTED = "meridian_round_trip_started"
_OPERATION = "meridian_round_trip_operation"


@dataclass(frozen=True, slots=True)
class AwsCall:
    operation: str  # "dynamodb.TransactWriteItems"
    started: float  # time.perf_counter()
    ended: float
    emulated_s: float = 0.0  # how long the call took before padding (the emulator's time)
    slower_than_model: bool = False  # the emulated call alone took longer than the modelled delay


def sequential_round_trips(calls: Sequence[AwsCall]) -> int:
    """The longest chain of calls where each starts after the one before it ended."""
    ordered = sorted(calls, key=lambda c: (c.started, c.ended))
    depth: list[int] = []
    for i, call in enumerate(ordered):
        before = [depth[j] for j in range(i) if ordered[j].ended <= call.started]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


def waiting_spans(calls: Sequence[AwsCall]) -> list[tuple[float, float]]:
    """The stretches of time during which at least one call was waiting (overlapping calls merged)."""
    spans: list[tuple[float, float]] = []
    for call in sorted(calls, key=lambda c: c.started):
        if spans and call.started < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], call.ended))
        else:
            spans.append((call.started, call.ended))
    return spans


def modelled(wall_s: float, calls: Sequence[AwsCall], delay_s: float) -> float:
    """``wall_s`` with every span of waiting on AWS counted as exactly ``delay_s``."""
    spans = waiting_spans(calls)
    return wall_s - sum(end - start for start, end in spans) + delay_s * len(spans)


class RoundTripRecorder:
    """Records the AWS calls of the clients it is attached to; optionally pads each to ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._calls: list[AwsCall] = []
        self._lock = threading.Lock()

    def attach(self, *clients: Any) -> None:
        for client in clients:
            events = client.meta.events
            events.register("before-call", self._before, unique_id=f"round-trips-before-{id(self)}")
            events.register("after-call", self._after, unique_id=f"round-trips-after-{id(self)}")
            events.register("after-call-error", self._after, unique_id=f"round-trips-error-{id(self)}")

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_OPERATION] = f"{model.service_model.endpoint_prefix}.{model.name}"
        context[_STARTED] = time.perf_counter()

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        started = context.pop(_STARTED, None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        if elapsed < self.delay_s:
            time.sleep(self.delay_s - elapsed)
        call = AwsCall(
            str(context.get(_OPERATION, "?")),
            started,
            time.perf_counter(),
            emulated_s=elapsed,
            slower_than_model=bool(self.delay_s) and elapsed > self.delay_s,
        )
        with self._lock:
            self._calls.append(call)

    def take(self) -> list[AwsCall]:
        """The calls recorded since the last ``take`` (and forget them)."""
        with self._lock:
            calls, self._calls = self._calls, []
        return calls

    @contextmanager
    def request(self) -> Iterator[list[AwsCall]]:
        """The calls made inside the block, in the list yielded (filled when the block ends)."""
        self.take()
        made: list[AwsCall] = []
        try:
            yield made
        finally:
            made.extend(self.take())


def count_order_api_round_trips() -> RoundTripRecorder:
    """A recorder on every AWS client the order function creates in this process from now on."""
    from orders_api import aws as order_api_aws  # noqa: PLC0415 - the function's own package

    recorder = RoundTripRecorder()
    make = order_api_aws.client

    @functools.cache
    def counted_client(service: str) -> Any:
        client = make(service)
        recorder.attach(client)
        return client

    order_api_aws.client = counted_client
    return recorder
