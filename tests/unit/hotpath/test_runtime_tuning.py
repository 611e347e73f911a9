"""Runtime tuning: a short switch interval, start-up frozen, collections on schedule and timed."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from meridian_hotpath.metrics import LATENCY_BUCKETS, LoopHistogram
from meridian_hotpath.runtime_tuning import SWITCH_INTERVAL, RuntimeTuning


@pytest.fixture
def tuning() -> Iterator[tuple[RuntimeTuning, LoopHistogram]]:
    pauses = LoopHistogram(LATENCY_BUCKETS)
    tuning = RuntimeTuning(pauses)
    before = sys.getswitchinterval()
    tuning.start()
    yield tuning, pauses
    tuning.stop()
    assert sys.getswitchinterval() == before
    assert gc.get_freeze_count() == 0


def test_start_freezes_what_exists_and_shortens_the_switch_interval(
    tuning: tuple[RuntimeTuning, LoopHistogram],
) -> None:
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_threshold()[1:] != (1_000_000_000, 1_000_000_000), "no generation is left uncollected"


def test_every_collection_is_timed_and_cyclic_garbage_is_reclaimed(
    tuning: tuple[RuntimeTuning, LoopHistogram],
) -> None:
    runtime, pauses = tuning

    class Node:
        def __init__(self) -> None:
            self.me = self

    cycles = [Node() for _ in range(100)]
    alive = [weakref.ref(node) for node in cycles]
    del cycles
    collected_before = runtime.collections
    gc.collect()  # the oldest generation too: nothing frozen or paced away stays unreachable
    assert all(ref() is None for ref in alive)
    assert runtime.collections > collected_before
    assert sum(pauses.counts) == runtime.collections
    assert runtime.longest_pause > 0
