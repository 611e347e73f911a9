"""PutEvents with retries (the layer's, shared by the order API and the drop-copy consumer)."""

from __future__ import annotations

from typing import Any

from meridian.eventbridge import put_events_with_retries


def _entry(n: int) -> dict[str, Any]:
    return {"Source": "s", "DetailType": "d", "Detail": f'{{"n": {n}}}', "EventBusName": "bus"}


class Refusing:
    """PutEvents refusing the entries whose ``n`` is in ``refuse`` on their first ``times`` tries."""

    def __init__(self, refuse: set[int], times: int = 99, raises: int = 0) -> None:
        self.refuse, self.times, self.raises = refuse, times, raises
        self.calls: list[list[int]] = []
        self.tries: dict[int, int] = {}

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        numbers = [int(e["Detail"].split(": ")[1].rstrip("}")) for e in Entries]
        self.calls.append(numbers)
        if len(self.calls) <= self.raises:
            raise ConnectionError("endpoint unreachable")
        results = []
        for n in numbers:
            self.tries[n] = self.tries.get(n, 0) + 1
            refused = n in self.refuse and self.tries[n] <= self.times
            results.append({"ErrorCode": "ThrottlingException"} if refused else {"EventId": str(n)})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def no_sleep(_: float) -> None:
    return None


def test_only_the_refused_entries_are_retried_in_chunks_of_ten() -> None:
    events = Refusing({3, 12}, times=1)
    delivery = put_events_with_retries(events, [_entry(n) for n in range(15)], no_sleep)
    assert events.calls == [list(range(10)), [3], list(range(10, 15)), [12]]
    assert (delivery.sent, delivery.undelivered, delivery.accepted) == (15, [], 15)


def test_what_stays_refused_is_returned_with_its_position_and_error() -> None:
    delivery = put_events_with_retries(Refusing({4, 13}), [_entry(n) for n in range(15)], no_sleep)
    assert [(u.position, u.error) for u in delivery.undelivered] == [
        (4, "ThrottlingException: "),
        (13, "ThrottlingException: "),
    ]
    assert delivery.accepted == 13


def test_stopping_at_the_first_failure_sends_no_later_chunk() -> None:
    events = Refusing({4})
    delivery = put_events_with_retries(
        events, [_entry(n) for n in range(25)], no_sleep, stop_at_first_failure=True
    )
    assert all(max(call) < 10 for call in events.calls)
    assert (delivery.sent, [u.position for u in delivery.undelivered]) == (10, [4])


def test_a_call_that_raises_is_retried_and_reported_with_the_exception() -> None:
    recovered = put_events_with_retries(Refusing(set(), raises=2), [_entry(1)], no_sleep)
    assert recovered.undelivered == []
    failed = put_events_with_retries(Refusing(set(), raises=99), [_entry(1), _entry(2)], no_sleep)
    assert [u.position for u in failed.undelivered] == [0, 1]
    assert "endpoint unreachable" in failed.undelivered[0].error


def test_an_answer_without_per_entry_results_retries_every_entry() -> None:
    class Opaque:
        def __init__(self) -> None:
            self.calls = 0

        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
            self.calls += 1
            return {"FailedEntryCount": 1, "Entries": []}

    events = Opaque()
    delivery = put_events_with_retries(events, [_entry(1), _entry(2)], no_sleep)
    assert events.calls == 4
    assert [u.position for u in delivery.undelivered] == [0, 1]
