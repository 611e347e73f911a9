"""Lifecycle events: one batch per request, retries for refused entries, the DLQ, never a drop."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from orders_api.dal.eventbridge import EventBridgePublisher, EventDeliveryError
from orders_api.services import Services

from meridian.events import EventDetail, TradingHalted
from tests.unit.orders_api.harness import ACCOUNT_A, TRADER_B, Answer


def halted(n: int) -> TradingHalted:
    return TradingHalted(event_id=f"e{n}", occurred_at=datetime.now(UTC), halted=True, actor="ops")


class ScriptedEvents:
    """PutEvents that refuses the first ``failures`` answers' entries."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append(Entries)
        if len(self.calls) <= self.failures:
            return {
                "FailedEntryCount": len(Entries),
                "Entries": [{"ErrorCode": "Throttled"} for _ in Entries],
            }
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}


class RecordingQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.messages.extend(Entries)
        return {"Successful": Entries}


def test_refused_entries_are_retried_until_accepted() -> None:
    events = ScriptedEvents(failures=2)
    EventBridgePublisher(events, "bus", sleep=lambda _: None).publish([halted(1), halted(2)])
    assert [len(c) for c in events.calls] == [2, 2, 2]


def test_more_than_ten_events_go_in_chunks_of_ten() -> None:
    events = ScriptedEvents(failures=0)
    EventBridgePublisher(events, "bus", sleep=lambda _: None).publish([halted(n) for n in range(23)])
    assert [len(c) for c in events.calls] == [10, 10, 3]


def test_still_failing_entries_go_to_the_dead_letter_queue() -> None:
    queue = RecordingQueue()
    publisher = EventBridgePublisher(
        ScriptedEvents(failures=99), "bus", queue, "https://dlq", sleep=lambda _: None
    )
    publisher.publish([halted(1)])
    assert len(queue.messages) == 1
    assert json.loads(queue.messages[0]["MessageBody"])["entry"]["DetailType"] == "trading.halted.v1"


def test_without_a_dead_letter_queue_failure_is_raised() -> None:
    with pytest.raises(EventDeliveryError):
        EventBridgePublisher(ScriptedEvents(failures=99), "bus", sleep=lambda _: None).publish([halted(1)])


class RecordingPublisher:
    def __init__(self) -> None:
        self.batches: list[list[EventDetail]] = []

    def publish(self, events: Sequence[EventDetail]) -> None:
        self.batches.append(list(events))


def test_a_trade_request_publishes_one_batch_without_the_trade(
    api: Callable[..., Answer], svc: Services
) -> None:
    """trade.executed.v1 comes from the node's drop copy only; the API answers the fills."""
    recorder = RecordingPublisher()
    svc.events = recorder
    api(
        "POST",
        "/orders",
        body={"symbol": "AAPL", "side": "SELL", "quantity": 5, "price": "190.00"},
        who=TRADER_B,
    )
    body = {"symbol": "AAPL", "side": "BUY", "quantity": 5, "price": "190.00", "client_order_id": "x-1"}
    taker = api("POST", "/orders", body=body)
    assert [f["execution_id"] for f in taker.body["fills"]] == ["0-1"]  # node 0, its first trade
    assert [[e.detail_type for e in batch] for batch in recorder.batches] == [
        ["order.accepted.v1"],
        ["order.accepted.v1"],
    ]


def test_a_risk_refusal_is_announced_and_sends_nothing_to_the_node(
    api: Callable[..., Answer], svc: Services
) -> None:
    recorder = RecordingPublisher()
    svc.events = recorder
    refused = api(
        "POST", "/orders", body={"symbol": "AAPL", "side": "BUY", "quantity": 150_000, "price": "190.00"}
    )
    assert refused.status == 422, refused.body
    [[event]] = recorder.batches
    assert event.detail_type == "order.rejected.v1"
    assert event.reason == refused.body["error"]  # type: ignore[attr-defined]
    assert event.account == ACCOUNT_A  # type: ignore[attr-defined]
    listing = api("GET", "/orders")
    assert listing.body["orders"] == []
