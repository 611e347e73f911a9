"""A gateway per test, stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.gateway_harness import GatewayThread

StartGateway = Callable[..., GatewayThread]


@pytest.fixture
def start_gateway() -> Iterator[StartGateway]:
    started: list[GatewayThread] = []

    def start(**settings: Any) -> GatewayThread:
        gateway = GatewayThread(**settings)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
