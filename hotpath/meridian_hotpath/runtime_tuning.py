"""Process-wide runtime settings that keep the interpreter out of the matching path's latency tail.

GIL hand-offs. The journal thread needs the GIL twice per batch (to start the write, to report
the fdatasync). While the loop is busy matching, a waiting thread gets the GIL only when the
holder is asked to drop it, after ``sys.getswitchinterval()`` (5 ms by default): that wait would
land on every answer of the batch. ``SWITCH_INTERVAL`` bounds it.

Garbage collection. Keep Python's cyclic garbage collector out of the latency tail.

The engine keeps every order it ever accepted, so the heap grows with the day. With the default
thresholds each full collection walks all of it: on a node holding 100k orders that measured 45 to
100 ms, and gen1 collections up to 5 ms, which is the whole p99.9 budget many times over. Almost
nothing the node allocates per request forms a reference cycle, so:

* after recovery, collect once and ``gc.freeze()`` everything: the recovered state is never
  walked again;
* collect generation 0 automatically as usual (it only holds young objects: tens of microseconds)
  but never escalate to generations 1 and 2 on the collector's own schedule;
* every ``every`` inputs, from the commit path, collect generation 1 (the survivors since the last
  time) and freeze what is left: a bounded pause at a moment the node chooses.
"""

from __future__ import annotations

import gc
import logging
import sys
import time

log = logging.getLogger(__name__)

DEFAULT_EVERY = 5_000
SWITCH_INTERVAL = 100e-6
_NEVER = 1_000_000_000
_DEFAULT_THRESHOLDS = gc.get_threshold()
_DEFAULT_SWITCH_INTERVAL = sys.getswitchinterval()


class RuntimeTuning:
    """Everything below, applied on ``start`` and undone on ``stop``."""

    def __init__(self, gc_every: int = DEFAULT_EVERY) -> None:
        self.gc = GcPacing(gc_every)

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.gc.start()

    def stop(self) -> None:
        self.gc.stop()
        sys.setswitchinterval(_DEFAULT_SWITCH_INTERVAL)


class GcPacing:
    def __init__(self, every: int = DEFAULT_EVERY) -> None:
        self.every = every
        self._since = 0
        self.last_pause_seconds = 0.0

    def start(self) -> None:
        """Freeze the recovered state and take escalation off the collector's schedule."""
        gc.collect()
        gc.freeze()
        threshold0 = gc.get_threshold()[0]
        gc.set_threshold(threshold0, _NEVER, _NEVER)
        log.info("gc pacing: %d objects frozen after recovery", gc.get_freeze_count())

    def after_commit(self, records: int) -> None:
        self._since += records
        if self._since >= self.every:
            self._since = 0
            started = time.perf_counter()
            gc.collect(1)
            gc.freeze()
            self.last_pause_seconds = time.perf_counter() - started

    @staticmethod
    def stop() -> None:
        gc.unfreeze()
        gc.set_threshold(*_DEFAULT_THRESHOLDS)
