"""Process-wide runtime settings that keep the interpreter out of the matching path's latency tail.

GIL hand-offs. A thread that wants the GIL gets it only when the holder is asked to drop it, after
``sys.getswitchinterval()`` (5 ms by default); ``SWITCH_INTERVAL`` bounds that wait for the few
Python threads the node still has (the metrics endpoint's work runs on the loop; the journal's
syncer is a native thread that never takes the GIL).

Garbage collection. The engine's state is C structs, not Python objects, so the heap no longer
grows with the day: what the node allocates per request is a few bytes objects that die at once.
So the collector keeps its normal schedule, over a small heap: after start-up everything made so far
(modules, configuration, recovery) is collected once and frozen out of later collections, and every
collection's pause is timed into ``meridian_gc_pause_seconds``. Nothing is left unreachable and
uncollected (the previous pacing never collected the oldest generation after freezing).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 100e-6
_DEFAULT_SWITCH_INTERVAL = sys.getswitchinterval()


class PauseHistogram(Protocol):
    def observe(self, value: float, count: int = 1) -> None: ...


class RuntimeTuning:
    """Everything above, applied on ``start`` and undone on ``stop``."""

    def __init__(self, pauses: PauseHistogram | None = None) -> None:
        self._pauses = pauses
        self._started_at = 0.0
        self.collections = 0
        self.longest_pause = 0.0

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.collect()
        gc.freeze()
        log.info("gc: %d start-up objects frozen; collections keep their schedule", gc.get_freeze_count())
        gc.callbacks.append(self._timed)

    def stop(self) -> None:
        if self._timed in gc.callbacks:
            gc.callbacks.remove(self._timed)
        gc.unfreeze()
        sys.setswitchinterval(_DEFAULT_SWITCH_INTERVAL)

    def _timed(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_at = time.perf_counter()
            return
        pause = time.perf_counter() - self._started_at
        self.collections += 1
        self.longest_pause = max(self.longest_pause, pause)
        if self._pauses is not None:
            self._pauses.observe(pause)
