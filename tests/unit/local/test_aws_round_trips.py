"""Counting a request's sequential AWS round trips, and its latency when each costs a fixed delay."""

from __future__ import annotations

import pytest

from meridian_local.apigateway.aws_round_trips import AwsCall, modelled, sequential_round_trips, waiting_spans


def call(started: float, ended: float) -> AwsCall:
    return AwsCall("dynamodb.GetItem", started, ended)


def test_calls_one_after_another_add_up_and_concurrent_calls_count_once() -> None:
    assert sequential_round_trips([]) == 0
    assert sequential_round_trips([call(0, 1), call(1, 2), call(2, 3)]) == 3
    assert sequential_round_trips([call(0, 1), call(0.1, 1.2), call(1.2, 2)]) == 2
    # A long call beside two short ones in a row: the chain of two is the longest.
    assert sequential_round_trips([call(0, 3), call(0, 1), call(1, 2)]) == 2


def test_the_modelled_latency_counts_each_wait_as_one_delay() -> None:
    calls = [call(1.0, 1.01), call(1.0, 1.03), call(2.0, 2.004)]  # two concurrent reads, then a write
    assert waiting_spans(calls) == [(1.0, 1.03), (2.0, 2.004)]
    # 3 s of wall time, 0.034 s of it waiting on AWS in two waits of 4 ms each in the model.
    assert modelled(3.0, calls, 0.004) == pytest.approx(3.0 - 0.034 + 0.008)
