"""The node's HTTP endpoint: ``GET /metrics`` (Prometheus text) and ``GET /healthz`` (JSON).

It runs on the node's own event loop, so a scrape reads engine state from the engine's thread,
never concurrently with matching. A scrape costs the loop about a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from prometheus_client import CONTENT_TYPE_LATEST

from meridian_hotpath.metrics import NodeMetrics

_MAX_REQUEST_HEAD = 8192


async def _answer_http(
    metrics: NodeMetrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    method, path = [*request_line, "", ""][:2]
    path = path.split("?", 1)[0]
    if method != "GET":
        status, content_type, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
    elif path == "/metrics":
        status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
    elif path == "/healthz":
        healthy, health = metrics.health()
        status = "200 OK" if healthy else "503 Service Unavailable"
        content_type, body = "application/json", json.dumps(health).encode()
    else:
        status, content_type, body = "404 Not Found", "text/plain", b"not found\n"
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def start_metrics_server(metrics: NodeMetrics, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer_http(metrics, reader, writer)

    return await asyncio.start_server(handle, host, port, limit=_MAX_REQUEST_HEAD)
