"""Paced garbage collection: recovered state frozen, escalation only at the node's chosen moments."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from meridian_hotpath.gc_pacing import GcPacing


@pytest.fixture
def pacing() -> Iterator[GcPacing]:
    before = gc.get_threshold()
    pacing = GcPacing(every=100)
    pacing.start()
    yield pacing
    pacing.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_start_freezes_what_exists_and_stops_automatic_escalation(pacing: GcPacing) -> None:
    assert gc.get_freeze_count() > 0
    _, threshold1, threshold2 = gc.get_threshold()
    assert threshold1 >= 10**9
    assert threshold2 >= 10**9


def test_survivors_are_collected_and_frozen_every_n_records(pacing: GcPacing) -> None:
    survivors = [[n] for n in range(1000)]  # young, reachable containers
    frozen = gc.get_freeze_count()
    pacing.after_commit(99)
    assert gc.get_freeze_count() == frozen  # not yet
    pacing.after_commit(1)
    assert gc.get_freeze_count() >= frozen + len(survivors)
