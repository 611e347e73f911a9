"""Independent AWS reads of one request made at the same time (boto3 clients are thread-safe).

The pool is created on first use and kept for the container's life; a request that needs only one
read makes it on its own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="orders-api-io")


def together(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``(first(), second())``, the two made concurrently."""
    pending = _pool().submit(second)
    try:
        done = first()
    except BaseException:
        wait([pending])  # the other read finishes before the error propagates (no stray work)
        raise
    return done, pending.result()
