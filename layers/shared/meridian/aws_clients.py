"""The AWS helpers every function shares: one boto3 client per service, region, endpoint and bounds,
reused across warm invocations, and the error code of a failed call.

boto3 is imported on the first client, not with this module, so a handler that imports it stays
cheap to load (cold start). The endpoint is ``AWS_ENDPOINT_URL`` when set (moto, locally).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Bounds:
    """Time and retry bounds of a client on a latency-bound path (botocore's defaults otherwise)."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_pool_connections: int = 10


@lru_cache(maxsize=32)
def _client(service: str, region: str | None, endpoint_url: str | None, bounds: Bounds | None) -> Any:
    import boto3  # noqa: PLC0415 - deferred: see the module docstring

    config = None
    if bounds is not None:
        from botocore.config import Config  # noqa: PLC0415

        config = Config(
            connect_timeout=bounds.connect_timeout,
            read_timeout=bounds.read_timeout,
            retries={"max_attempts": bounds.max_attempts, "mode": "standard"},
            max_pool_connections=bounds.max_pool_connections,
        )
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def client(service: str, region: str | None = None, bounds: Bounds | None = None) -> Any:
    """The client for ``service`` in ``region`` (default: this function's), within ``bounds``."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _client(service, region, os.environ.get("AWS_ENDPOINT_URL") or None, bounds)


def reset_clients() -> None:
    """Forget every client (tests that start a new mock)."""
    _client.cache_clear()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call (``ClientError``), or "" for any other failure."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code") or "")
