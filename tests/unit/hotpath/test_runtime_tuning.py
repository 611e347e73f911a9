"""Runtime tuning: a short GIL switch interval; paced garbage collection."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from meridian_hotpath.runtime_tuning import SWITCH_INTERVAL, GcPacing, RuntimeTuning


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


def test_runtime_tuning_is_undone_on_stop() -> None:
    interval = sys.getswitchinterval()
    tuning = RuntimeTuning()
    tuning.start()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    tuning.stop()
    assert sys.getswitchinterval() == interval
    assert gc.get_freeze_count() == 0
