"""Small statistics shared by the node's metrics, the benchmarks and the local demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def nearest_rank(ordered: Sequence[T], q: float) -> T:
    """The ``q`` quantile (0..1) of an already sorted, non-empty sequence, by nearest rank."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
