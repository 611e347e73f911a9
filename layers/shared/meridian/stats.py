"""Small statistics shared by the node's metrics, the benchmarks and the local demo."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def nearest_rank(ordered: Sequence[T], q: float) -> T:
    """The ``q`` quantile (0..1) of an already sorted, non-empty sequence, by nearest rank.

    The smallest value with at least ``q`` of the sample at or below it: rank ``ceil(q * n)``
    (1-based), at least 1. No interpolation, so the answer is always a value that was observed.
    """
    if not ordered:
        raise ValueError("the quantile of an empty sample is undefined")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    # round(): 0.999 * 1000 is 999.0000000000001 in binary floating point, which is rank 999, not 1000.
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]
