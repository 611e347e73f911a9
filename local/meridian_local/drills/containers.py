"""One Python process standing in for two regions' Lambda containers.

The functions keep what a container keeps for its life at module level: the order API's wired
services, the settings read once, boto3 clients (created for the region of the first invocation),
the ledger connection. Here every function runs in this process, so without care the recovery
region's order API would use the primary's clients, tables and matching node. :class:`ContainerCaches`
gives each container its own (a container is a function of a region in one configuration: a changed
configuration starts new ones, as in Lambda): around each invocation it puts that container's back
and takes them out after, one invocation at a time (the drill's functions never invoke each other
synchronously).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

# (module, attribute) kept per container; lru_caches are cleared instead (rebuilt from the environment).
# boto3 clients need neither: ``meridian.aws_clients`` keys them by region and endpoint already.
_KEPT = (("orders_api.services", "_current"), ("meridian.db", "_shared"))
_CLEARED = (("orders_api.config", "settings"),)


def cold_start() -> None:
    """Forget what every container kept: the functions invoked next start cold (new functions, a
    new stack, where the old one's cached tables and routes would be wrong)."""
    for module, name in _KEPT:
        if module in sys.modules:
            setattr(sys.modules[module], name, None)
    _clear()


def _clear() -> None:
    for module, name in _CLEARED:
        cached = getattr(sys.modules.get(module), name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()


class ContainerCaches:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, dict[tuple[str, str], Any]] = {}  # by container

    def run(self, container: str, call: Callable[[], _T]) -> _T:
        with self._lock:
            self._swap_in(container)
            try:
                return call()
            finally:
                self._kept[container] = {
                    (module, name): getattr(sys.modules[module], name, None)
                    for module, name in _KEPT
                    if module in sys.modules
                }

    def _swap_in(self, container: str) -> None:
        kept = self._kept.get(container, {})
        for module, name in _KEPT:
            if module in sys.modules:
                setattr(sys.modules[module], name, kept.get((module, name)))
        _clear()
