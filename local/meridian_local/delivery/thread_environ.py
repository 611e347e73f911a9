"""A per-thread overlay of ``os.environ``: what an in-process Lambda invocation sets stays on its thread.

Each invocation sees its function's variables without a global lock, so invocations on different
threads (moto serves each request on its own) never see each other's environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

_DELETED = object()


class ThreadLocalEnviron(MutableMapping[str, str]):
    """``os.environ`` with a per-thread overlay: what an invocation sets stays on its thread."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self.base = base
        self._local = threading.local()

    def _overlay(self) -> dict[str, object] | None:
        overlay: dict[str, object] | None = getattr(self._local, "overlay", None)
        return overlay

    @contextmanager
    def overlaid(self, values: Mapping[str, str]) -> Iterator[None]:
        previous = self._overlay()
        self._local.overlay = {**(previous or {}), **values}
        try:
            yield
        finally:
            self._local.overlay = previous

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is _DELETED:
                raise KeyError(key)
            return str(value)
        return self.base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is None:
            self.base[key] = value
        else:
            overlay[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is None:
            del self.base[key]
        elif key not in self:
            raise KeyError(key)
        else:
            overlay[key] = _DELETED

    def _keys(self) -> list[str]:
        overlay = self._overlay() or {}
        keys = [k for k in self.base if k not in overlay]
        return keys + [k for k, v in overlay.items() if v is not _DELETED]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def copy(self) -> dict[str, str]:
        return dict(self.items())


def thread_local_environ() -> ThreadLocalEnviron:
    """Install the overlay as ``os.environ`` (once) and return it."""
    current: Any = os.environ
    if isinstance(current, ThreadLocalEnviron):
        return current
    wrapper = ThreadLocalEnviron(current)
    os.environ = wrapper  # type: ignore[assignment]  # noqa: B003 - an overlay over the real environment
    return wrapper
