"""The order path's boto3 clients: the layer's (``meridian.aws_clients``), bounded in time.

A client waits 2 s to connect and 5 s for an answer and tries a call three times at most, so a slow
AWS dependency answers the caller with an error within the function's timeout.
"""

from __future__ import annotations

from typing import Any

from meridian import aws_clients

ORDER_PATH = aws_clients.Bounds(connect_timeout=2, read_timeout=5, max_attempts=3, max_pool_connections=16)


def client(service: str) -> Any:
    return aws_clients.client(service, bounds=ORDER_PATH)


def reset_clients() -> None:
    """Forget every client (tests that start a new mock, or a changed endpoint)."""
    aws_clients.reset_clients()
