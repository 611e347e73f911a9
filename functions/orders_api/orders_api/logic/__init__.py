"""Business rules of the order API: plain functions over the services, no event shapes.

The routes reach them as ``logic.<module>.<function>`` and each module is imported on first use: a
cold start serving one route loads that route's rules (and what they need: risk, the node's
client, the events) and not the others'. A container initialised for provisioned concurrency loads
them all in its init (``orders_api.api.build_models_now``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

MODULES = ("admin", "manage", "queries", "submit")

if TYPE_CHECKING:  # the names mypy sees; at run time ``__getattr__`` imports them when first named
    from orders_api.logic import admin, manage, queries, submit


def __getattr__(name: str) -> ModuleType:
    if name not in MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = module
    return module


def load_all() -> None:
    for name in MODULES:
        __getattr__(name)


__all__ = ["admin", "load_all", "manage", "queries", "submit"]
