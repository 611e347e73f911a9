"""Fixtures of the client tests: a fresh connection pool and scripted stub nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from meridian.client import close_pooled_connections
from tests.unit.client.stub_node import Script, StubNode


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    close_pooled_connections()
    yield
    close_pooled_connections()


@pytest.fixture
def stub_factory() -> Iterator[Callable[[Script], StubNode]]:
    stubs: list[StubNode] = []

    def make(script: Script) -> StubNode:
        stub = StubNode(script)
        stubs.append(stub)
        return stub

    yield make
    for stub in stubs:
        stub.stop()
