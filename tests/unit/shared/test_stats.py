"""meridian.stats.nearest_rank: the one percentile the node, the benchmarks and the demo use."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.stats import nearest_rank


def test_nearest_rank_of_one_to_hundred_is_the_percent_itself() -> None:
    values = list(range(1, 101))
    assert nearest_rank(values, 0.50) == 50
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank(values, 0.999) == 100
    assert nearest_rank(values, 1.0) == 100
    assert nearest_rank(values, 0.0) == 1


def test_binary_fractions_do_not_move_the_rank() -> None:
    # 0.999 * 1000 is not exactly 999 in floating point; the rank must still be 999.
    assert nearest_rank(list(range(1, 1001)), 0.999) == 999
    assert nearest_rank(list(range(1, 11)), 0.3) == 3  # 0.3 * 10 = 3.0000000000000004


def test_small_samples() -> None:
    assert nearest_rank([7], 0.5) == 7
    assert nearest_rank([1, 2], 0.5) == 1
    assert nearest_rank([1, 2], 0.51) == 2
    assert nearest_rank([1, 2, 3, 4], 0.75) == 3


def test_refuses_an_empty_sample_or_a_quantile_outside_0_to_1() -> None:
    with pytest.raises(ValueError, match="empty"):
        nearest_rank([], 0.5)
    with pytest.raises(ValueError, match="outside"):
        nearest_rank([1], 99)


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=300), st.floats(0.001, 1.0))
def test_at_least_q_of_the_sample_is_at_or_below_it_and_less_below(values: list[int], q: float) -> None:
    ordered = sorted(values)
    answer = nearest_rank(ordered, q)
    at_or_below = sum(1 for v in ordered if v <= answer)
    below = sum(1 for v in ordered if v < answer)
    assert at_or_below >= math.floor(q * len(ordered) * (1 - 1e-12))
    assert below < max(1, math.ceil(q * len(ordered) - 1e-9))
    assert answer in ordered
