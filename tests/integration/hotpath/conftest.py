"""Fixtures of the node-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.hotpath.kinesis_server import moto_server


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """moto server on a free loopback port (the AWS endpoint for a node started as a process)."""
    yield from moto_server()
