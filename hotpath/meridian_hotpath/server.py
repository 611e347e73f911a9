"""The matching node's TCP server: many connections, pipelined requests, one engine.

Connections are ``asyncio.Protocol`` objects: ``data_received`` hands the bytes just read to the
node, whose native core processes every complete frame in them at once, so a client may keep many
requests in flight (answers carry its request ids). Back-pressure is per connection: when a client stops
reading its answers and the transport's write buffer passes its high-water mark, the server stops
reading that client's requests until the buffer drains; other clients are unaffected. A malformed
frame is answered with ``ProtocolReject`` and that connection alone is closed.

Connections are also held to limits (``ConnectionLimits``), so none can hold the node's resources
for nothing: a connection over the cap is refused (``TOO_MANY_CONNECTIONS``) and closed; one that
sends nothing, not even a heartbeat, for the idle timeout while it is owed no answer is closed
(``IDLE_TIMEOUT``); one that holds the start of a frame longer than the partial-frame timeout is
closed (``PARTIAL_FRAME_TIMEOUT``; a length prefix beyond the largest frame is refused by the
core at once, ``BAD_LENGTH``, so a held partial frame is always smaller than one frame). Accepted
sockets use TCP keepalive, so a peer that vanished without a FIN is found by the kernel. The
timeouts are checked by one sweep on the loop a few times per timeout, not per frame: the request
path only records when each read arrived.

With session keys (``logon.Authenticator``), a connection starts with ``LogonChallenge`` and its
first frame must be a valid ``Logon`` (``meridian.session_auth``); until then nothing it sends
reaches the engine (``NOT_LOGGED_ON`` / ``LOGON_FAILED`` and the connection is closed). After it,
the session's permissions and account go with every read to the native core, which checks each
frame (``NOT_PERMITTED`` / ``WRONG_ACCOUNT``) before it touches any state.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from meridian.protocol import (
    Flag,
    Logon,
    LogonAck,
    LogonChallenge,
    ProtocolError,
    ProtocolReject,
    ProtocolRejectCode,
    decode,
    encode,
    frame_length,
)
from meridian.session_auth import PERM_ALL
from meridian_hotpath.logon import Authenticator
from meridian_hotpath.node import MatchingNode

log = logging.getLogger(__name__)

DEFAULT_WRITE_BUFFER_HIGH = 256 * 1024
# A client may have this many requests awaiting their fsync before its reading pauses: the bound on
# what one client can make the node hold while the disk is slow.
DEFAULT_MAX_OWED = 4096


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may hold (0 turns a timeout off)."""

    max_connections: int = 1024
    idle_timeout: float = 120.0  # seconds without a byte from the client (clients heartbeat or reconnect)
    partial_frame_timeout: float = 5.0  # seconds a frame may take to arrive whole
    keepalive_idle: int = 30  # TCP keepalive: seconds of silence before the first probe
    keepalive_interval: int = 10  # seconds between probes
    keepalive_probes: int = 3  # unanswered probes before the kernel drops the connection
    # SNAPSHOT_REQUESTs per connection: a burst of this many (one per symbol of a book check), then
    # one per ``snapshot_interval`` seconds (0: any rate).
    snapshot_burst: int = 16
    snapshot_interval: float = 1.0

    @property
    def sweep_interval(self) -> float:
        timeouts = [t for t in (self.idle_timeout, self.partial_frame_timeout) if t > 0]
        return min(timeouts) / 4 if timeouts else 0.0


def enable_keepalive(sock: socket.socket, limits: ConnectionLimits) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's defaults apply
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, limits.keepalive_idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, limits.keepalive_interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, limits.keepalive_probes)


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: MatchingServer) -> None:
        self._server = server
        self._node = server.node
        self._transport: asyncio.Transport | None = None
        self._leftover = b""  # the start of a frame whose rest has not arrived yet
        self.closing = False  # no further requests from this client are processed
        self.lost = False  # the connection is gone: answers to it are dropped
        self.paused = False  # the client is not reading its answers
        self.owed = 0  # requests handed to the node whose answers wait for their fsync
        self._reading = True
        self.last_received_ns = time.perf_counter_ns()  # the idle timeout counts from here
        self.partial_since_ns = 0  # when the held start of a frame arrived
        self._continuing = -1  # bytes fed in this read when they continue a held frame
        self._snapshot_tokens = float(server.limits.snapshot_burst)  # SNAPSHOT_REQUESTs it may make now
        self._snapshot_refilled_ns = time.perf_counter_ns()
        self._reject_when_answered: Callable[[], None] | None = None  # a reject behind owed answers
        # The session: what the native core lets this connection send (everything on an open node).
        self.permissions = PERM_ALL
        self.account: bytes | None = None
        self._nonce: bytes | None = None  # the logon challenge while the connection has not logged on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like one
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._server.socket_send_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._server.socket_send_buffer)
            enable_keepalive(sock, self._server.limits)
        transport.set_write_buffer_limits(high=self._server.write_buffer_high)
        authenticator = self._server.authenticator
        if authenticator is not None:
            self.permissions = 0  # nothing until the logon
            self._nonce = authenticator.challenge()
        if not self._server.connection_opened(self):
            self.closing = True
            self._node.metrics.protocol_rejects.labels(
                ProtocolRejectCode.TOO_MANY_CONNECTIONS.name.lower()
            ).inc()
            transport.write(encode(ProtocolReject(0, ProtocolRejectCode.TOO_MANY_CONNECTIONS), Flag.LAST))
            transport.close()
        elif self._nonce is not None:
            transport.write(encode(LogonChallenge(0, self._nonce.hex()), Flag.LAST))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = self.lost = True
        self._server.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        received_ns = time.perf_counter_ns()
        if self.closing:
            return
        self.last_received_ns = received_ns
        if self._leftover:
            data = self._leftover + data
            self._leftover = b""
            self._continuing = len(data)  # a held frame goes on: its clock keeps running
        else:
            self._continuing = -1
        if self._nonce is not None:
            data = self._logon(data)
            if not data:
                return
        self._node.feed(self, data, received_ns)
        if self.owed >= self._server.max_owed:
            self._update_reading()

    def _logon(self, data: bytes) -> bytes:
        """Take the LOGON frame off the front of ``data``: the bytes after it once logged on, or
        nothing (incomplete: kept; anything else: refused and closed)."""
        try:
            total = frame_length(data)
        except ProtocolError:
            if len(data) < 4:
                self.keep(data)
            else:
                self.reject_and_close(0, ProtocolRejectCode.BAD_LENGTH)
            return b""
        if len(data) < total:
            self.keep(data)
            return b""
        try:
            message, _, _ = decode(data)
        except ProtocolError:
            self.reject_and_close(0, ProtocolRejectCode.NOT_LOGGED_ON)
            return b""
        if not isinstance(message, Logon):
            self.reject_and_close(message.request_id, ProtocolRejectCode.NOT_LOGGED_ON)
            return b""
        authenticator, nonce = self._server.authenticator, self._nonce
        assert authenticator is not None
        assert nonce is not None
        key = authenticator.verify(message, nonce)
        if key is None:
            log.warning("logon refused for key id %r", message.key_id)
            self.reject_and_close(message.request_id, ProtocolRejectCode.LOGON_FAILED)
            return b""
        self._nonce = None
        self.permissions, self.account = key.permissions, key.account_field
        self._node.metrics.logons.labels(key.role.name.lower()).inc()
        self.send(encode(LogonAck(message.request_id, key.role, key.account), Flag.LAST))
        return data[total:]

    def keep(self, rest: bytes) -> None:
        """The start of a frame whose rest has not arrived yet."""
        if not self.closing:
            if len(rest) != self._continuing:  # not the held frame still waiting: a new one started
                self.partial_since_ns = self.last_received_ns
            self._leftover = rest

    def check_limits(self, now_ns: int, limits: ConnectionLimits) -> None:
        """The sweep: close this connection if it held a partial frame or stayed silent too long."""
        if self.closing:
            return
        partial_limit_ns = limits.partial_frame_timeout * 1e9
        if self._leftover and partial_limit_ns > 0 and now_ns - self.partial_since_ns > partial_limit_ns:
            self._leftover = b""
            self.reject_and_close(0, ProtocolRejectCode.PARTIAL_FRAME_TIMEOUT)
            return
        idle_limit_ns = limits.idle_timeout * 1e9
        # A client owed answers (or not reading them) waits for the node, not the other way round.
        waiting = self.owed > 0 or not self._reading
        if idle_limit_ns > 0 and not waiting and now_ns - self.last_received_ns > idle_limit_ns:
            self.reject_and_close(0, ProtocolRejectCode.IDLE_TIMEOUT)

    def allow_snapshot_request(self, received_ns: int) -> bool:
        """Whether a SNAPSHOT_REQUEST read at ``received_ns`` keeps to the per-connection rate (a
        token bucket: ``snapshot_burst`` tokens, one more every ``snapshot_interval`` seconds)."""
        limits = self._server.limits
        if limits.snapshot_interval <= 0:
            return True
        refill = (received_ns - self._snapshot_refilled_ns) / (limits.snapshot_interval * 1e9)
        self._snapshot_tokens = min(float(limits.snapshot_burst), self._snapshot_tokens + max(refill, 0.0))
        self._snapshot_refilled_ns = max(received_ns, self._snapshot_refilled_ns)
        if self._snapshot_tokens < 1.0:
            return False
        self._snapshot_tokens -= 1.0
        return True

    def held(self, answers: int) -> None:
        """``answers`` answers to this client wait for their journal records."""
        self.owed += answers

    @property
    def reading_paused(self) -> bool:
        return not self._reading

    def _update_reading(self) -> None:
        """Read only while the client reads its answers and does not owe too many."""
        transport = self._transport
        if transport is None or self.closing:
            return
        should_read = not self.paused and self.owed < self._server.max_owed
        if should_read and not self._reading:
            transport.resume_reading()
        elif not should_read and self._reading:
            transport.pause_reading()
        self._reading = should_read

    def send(self, data: bytes) -> None:
        if not self.lost and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def released(self, answers: int) -> None:
        self.owed -= answers
        if self._reject_when_answered is not None and self.owed == 0:
            reject, self._reject_when_answered = self._reject_when_answered, None
            reject()
        if not self._reading:
            self._update_reading()

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None:
        transport = self._transport
        if self.closing or transport is None:
            return
        self.closing = True
        transport.pause_reading()
        self._node.metrics.protocol_rejects.labels(code.name.lower()).inc()
        log.info("protocol reject %s for request %d; closing the connection", code.name, request_id)

        def reject() -> None:
            # After the answers to this client's earlier requests, which wait for their fsync (and
            # for the snapshots they asked for: those still owed send it when they are out).
            if self.owed > 0:
                self._reject_when_answered = reject
                return
            if not self.lost:
                transport.write(encode(ProtocolReject(request_id, code), Flag.LAST))
                transport.close()  # flushes the write buffer, then closes

        self._node.after_answers(reject)

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it catches up.
        self.paused = True
        self._node.metrics.backpressure_pauses.inc()
        self._update_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self._update_reading()

    def stop_reading(self) -> None:
        """Shutdown: no more requests from this client; answers already owed still go out."""
        if self._transport is not None and not self.closing:
            self._transport.pause_reading()
        self.closing = True

    def close(self) -> None:
        self.closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


class MatchingServer:
    def __init__(
        self,
        node: MatchingNode,
        write_buffer_high: int = DEFAULT_WRITE_BUFFER_HIGH,
        socket_send_buffer: int | None = None,
        max_owed: int = DEFAULT_MAX_OWED,
        limits: ConnectionLimits | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.node = node
        self.authenticator = authenticator  # None: an open port (in-process tests and tools only)
        self.max_owed = max_owed
        self.limits = limits or ConnectionLimits()
        self._sweeper: asyncio.Task[None] | None = None
        self.write_buffer_high = write_buffer_high
        self.socket_send_buffer = socket_send_buffer  # SO_SNDBUF per connection; None: the kernel's
        self.connections: set[ClientConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    @property
    def paused_connections(self) -> int:
        return sum(1 for connection in self.connections if connection.reading_paused)

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> int:
        """Listen; return the bound port (``port`` 0 picks a free one). ``sock``: a socket bound
        before (a standby reserves its port and listens on it only once it takes over)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(lambda: ClientConnection(self), sock=sock, backlog=1024)
        else:
            server = await loop.create_server(lambda: ClientConnection(self), host, port, backlog=1024)
        self._server = server
        if self.limits.sweep_interval > 0:
            self._sweeper = loop.create_task(self._sweep_forever(), name="connection-sweeper")
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def _sweep_forever(self) -> None:
        interval = self.limits.sweep_interval
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.perf_counter_ns())

    def sweep(self, now_ns: int) -> None:
        """Close the connections that broke a timeout (``ConnectionLimits``)."""
        for connection in list(self.connections):
            connection.check_limits(now_ns, self.limits)

    def connection_opened(self, connection: ClientConnection) -> bool:
        """Count a new connection in; False when it is over the cap (the caller refuses it)."""
        if len(self.connections) >= self.limits.max_connections:
            return False
        self.connections.add(connection)
        self._all_closed.clear()
        self.node.metrics.connections.set(len(self.connections))
        self.node.metrics.connections_accepted.inc()
        return True

    def connection_closed(self, connection: ClientConnection) -> None:
        self.connections.discard(connection)
        self.node.metrics.connections.set(len(self.connections))
        if not self.connections:
            self._all_closed.set()

    def stop_accepting(self) -> None:
        """Stop accepting and reading requests; answers already owed still go out."""
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.stop_reading()

    async def close_connections(self, drain_timeout: float = 2.0) -> None:
        for connection in list(self.connections):
            connection.close()  # each transport flushes its buffered answers before closing
        try:
            await asyncio.wait_for(self._all_closed.wait(), drain_timeout)
        except TimeoutError:
            log.warning("%d connections did not drain before shutdown", len(self.connections))
        if self._server is not None:
            await self._server.wait_closed()
