"""The WebSocket server: connect (authenticated before the upgrade), requests, fan-out, health.

``GET /stream`` with an ``X-Meridian-Auth`` token upgrades to WebSocket once the caller is verified
(``identity``) and registered (``access``); a refused connect is answered before the upgrade with
401 or 403 and a JSON body ``{"code", "message"}``. ``GET /healthz`` says whether the sources are
being read (503 until they are), ``GET /metrics`` is Prometheus text.

Close codes: 1000 (the client closed), 1001 (the gateway is stopping), 1009 (a frame over
``max_message_bytes``), 1011 (an internal error), 4008 (slow consumer: a frame not read for
``slow_after_s`` with ``max_queue`` messages behind it, or ``max_backlog`` queued). Bad requests
are answered with an ``error`` message and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

import orjson
from prometheus_client import generate_latest
from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian_gateway.access import Caller, ChannelAccess
from meridian_gateway.config import GatewaySettings
from meridian_gateway.hub import Client, Hub
from meridian_gateway.identity import HEADER, AuthError, Identity
from meridian_gateway.metrics import GatewayMetrics
from meridian_gateway.models import REQUEST, Ping, Resync, Subscribe, Unsubscribe

log = logging.getLogger(__name__)
STREAM_PATH = "/stream"


class Verifier(Protocol):
    def identify(self, token: str, now: datetime | None = None) -> Identity: ...


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(
        status, HTTPStatus(status).phrase, Headers([("Content-Type", "application/json")]), orjson.dumps(body)
    )


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        verifier: Verifier,
        access: ChannelAccess,
        symbols: set[str] | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.verifier = verifier
        self.access = access
        self.metrics = metrics or GatewayMetrics()
        self.symbols = symbols or {i.symbol for i in DEFAULT_INSTRUMENTS}
        self.hub = Hub(self.metrics, {i.symbol: i.price_scale for i in DEFAULT_INSTRUMENTS})
        self.clients: set[Client] = set()
        self.health_checks: list[Callable[[], bool]] = []
        self._callers: dict[int, Caller] = {}
        self._server: Server | None = None

    # ---- HTTP before the upgrade ---------------------------------------------------------------

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            failing = [i for i, check in enumerate(self.health_checks) if not check()]
            status = 503 if failing else 200
            return _json_response(status, {"status": "ok" if not failing else "starting or degraded"})
        if path == "/metrics":
            body = generate_latest(self.metrics.registry)
            return Response(200, "OK", Headers([("Content-Type", "text/plain; version=0.0.4")]), body)
        if path != STREAM_PATH:
            return _json_response(404, {"code": "NOT_FOUND", "message": f"connect to {STREAM_PATH}"})
        try:
            identity = await asyncio.to_thread(self.verifier.identify, request.headers.get(HEADER, ""))
            caller = await asyncio.to_thread(self.access.caller, identity)
        except AuthError as exc:
            self.metrics.refused.labels(exc.code).inc()
            return _json_response(exc.status, {"code": exc.code, "message": exc.message})
        self._callers[id(connection)] = caller
        return None

    # ---- a connection --------------------------------------------------------------------------

    async def handler(self, connection: ServerConnection) -> None:
        caller = self._callers.pop(id(connection))

        async def send(frame: bytes) -> None:
            await connection.send(frame, text=True)

        settings = self.settings
        client = Client(
            caller,
            send,
            connection.close,
            settings.max_queue,
            self.metrics,
            slow_after_s=settings.slow_after_s,
            max_backlog=settings.max_backlog,
        )
        self.clients.add(client)
        self.metrics.connections.inc()
        client.enqueue(
            0,
            orjson.dumps(
                {
                    "type": "welcome",
                    "principal": caller.principal,
                    "account": caller.account,
                    "heartbeat_s": settings.heartbeat_s,
                    "max_subscriptions": settings.max_subscriptions,
                    "max_queue": settings.max_queue,
                }
            ),
        )
        pump = asyncio.get_running_loop().create_task(client.pump())
        try:
            async for raw in connection:
                self.handle(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            self.hub.remove(client)
            self.metrics.connections.dec()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pump

    def handle(self, client: Client, raw: str | bytes) -> None:
        """One client request; a bad one is answered with an error message."""
        if isinstance(raw, bytes):
            self._error(client, None, "BAD_REQUEST", "requests are JSON text frames")
            return
        try:
            request = REQUEST.validate_json(raw)
        except ValidationError as exc:
            self._refuse(client, raw, exc)
            return
        if isinstance(request, Subscribe):
            self._subscribe(client, request)
        elif isinstance(request, Unsubscribe):
            for channel in request.channels:
                self.hub.unsubscribe(client, channel)
            self._reply(client, {"type": "unsubscribed", "id": request.id, "channels": request.channels})
        elif isinstance(request, Resync):
            if request.channel not in client.channels or not request.channel.startswith("book."):
                self._error(
                    client, request.id, "NOT_SUBSCRIBED", "resync a book you subscribe to", request.channel
                )
            else:
                self.hub.send_snapshot(client, request.channel)
        elif isinstance(request, Ping):
            self._reply(client, {"type": "pong", "id": request.id})

    def _subscribe(self, client: Client, request: Subscribe) -> None:
        new = [c for c in dict.fromkeys(request.channels) if c not in client.channels]
        if len(client.channels) + len(new) > self.settings.max_subscriptions:
            message = f"at most {self.settings.max_subscriptions} subscriptions a connection"
            self._error(client, request.id, "TOO_MANY_SUBSCRIPTIONS", message)
            return
        done: list[str] = []
        for channel in new:
            if channel != "orders" and channel.partition(".")[2] not in self.symbols:
                self._error(client, request.id, "UNKNOWN_CHANNEL", f"{channel}: no such symbol", channel)
                continue
            why = self.access.allowed(client.caller, channel)
            if why is not None:
                self._error(client, request.id, "FORBIDDEN", why, channel)
                continue
            done.append(channel)
        self._reply(client, {"type": "subscribed", "id": request.id, "channels": done})
        for channel in done:  # after the answer: a book's snapshot follows its "subscribed"
            self.hub.subscribe(client, channel)

    def _refuse(self, client: Client, raw: str, exc: ValidationError) -> None:
        request_id = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            value = orjson.loads(raw).get("id")
            request_id = value if isinstance(value, int) and 0 <= value <= 2**53 else None
        first = exc.errors()[0]
        if first["type"] == "string_pattern_mismatch" and {"channels", "channel"} & set(
            map(str, first["loc"])
        ):
            self._error(
                client, request_id, "UNKNOWN_CHANNEL", f"no such channel: {str(first['input'])[:64]!r}"
            )
            return
        where = ".".join(str(part) for part in first["loc"])
        self._error(client, request_id, "BAD_REQUEST", f"{where}: {first['msg']}"[:300])

    def _reply(self, client: Client, message: dict[str, Any]) -> None:
        client.enqueue(0, orjson.dumps(message))

    def _error(
        self, client: Client, request_id: int | None, code: str, text: str, channel: str | None = None
    ) -> None:
        self.metrics.bad_requests.labels(code).inc()
        message: dict[str, Any] = {"type": "error", "id": request_id, "code": code, "message": text}
        if channel is not None:
            message["channel"] = channel
        self._reply(client, message)

    # ---- life ----------------------------------------------------------------------------------

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            self.hub.heartbeat(list(self.clients))

    async def start(self) -> Server:
        settings = self.settings
        self._server = await serve(
            self.handler,
            settings.host,
            settings.port,
            process_request=self.process_request,
            max_size=settings.max_message_bytes,
            max_queue=16,
            write_limit=settings.write_limit,
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_interval,
            close_timeout=2,
            compression=None,
        )
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()


def now_utc() -> datetime:
    return datetime.now(UTC)


def main() -> int:
    from meridian_gateway.aws_main import run  # noqa: PLC0415 - boto3 set-up only in the container

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run(GatewaySettings())
