"""boto3 clients, created on first use and kept for the container's life.

boto3 is imported here, lazily, so that importing the handler stays cheap (cold start); the endpoint
comes from ``AWS_ENDPOINT_URL`` when set (moto locally), as botocore reads it itself.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - deferred: see the module docstring
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=16,
    )
    return boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget every client (tests that start a new mock, or a changed endpoint)."""
    client.cache_clear()
