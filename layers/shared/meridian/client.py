"""Synchronous client of the matching node, for the Lambdas (which are synchronous).

Connections are pooled per address at module level, so a warm Lambda container reuses its socket
across invocations. Every request gets a process-unique request id; its answer is every frame
carrying that id up to the one flagged LAST.

Given a session key (``credential``, ``meridian.session_auth``), each new connection logs on before
its first request: it waits for the node's ``LogonChallenge``, answers with ``Logon`` and waits for
``LogonAck``. Pooled connections are kept per address and key, so sessions are never mixed.

A ``NewOrder`` (or ``NewStopOrder``) whose connection breaks before its answer is re-sent once on a
fresh connection with the same client order id: the engine answers a repeat with the existing
order's Ack flagged DUPLICATE, so the resend can never create a second order. Cancels and replaces
are not re-sent (their outcome is unknown and ``HotpathConnectionLostError`` says so).

Errors: ``HotpathUnavailable`` (cannot connect, or no answer in time; the API maps it to 503),
``HotpathOutcomeUnknownError`` (the request was sent and its answer cannot be read: the connection
broke, ``HotpathConnectionLostError``, or the node's answer could not be decoded; the request may
have been acted on and the order may be live, so a caller resolves it by client order id, never as
a rejection), ``HotpathProtocolError`` (the node refused the frame with a ProtocolReject: nothing
of it was done). All derive from ``HotpathError``.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from meridian.domain import OrderType, RejectReason, SelfTradePrevention, Side, TimeInForce
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    ORDER_FLAG_STP_SHIFT,
    BookExport,
    BookExported,
    Cancel,
    Flag,
    Heartbeat,
    Logon,
    LogonAck,
    LogonChallenge,
    Message,
    NewOrder,
    NewStopOrder,
    ProtocolError,
    ProtocolReject,
    Reject,
    Replace,
    RestingOrder,
    Snapshot,
    SnapshotRequest,
    decode_stream,
    encode,
)
from meridian.session_auth import SessionKey

DEFAULT_TIMEOUT = 2.0
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_PIPELINE_WINDOW = 512
_RECV_BYTES = 256 * 1024
_M = TypeVar("_M", Heartbeat, Snapshot)
_IDEMPOTENT = (
    NewOrder,
    NewStopOrder,
    Heartbeat,
    BookExport,
    SnapshotRequest,
)  # safe to send twice (see module docstring)


class HotpathError(Exception):
    """Base of every hot-path client error."""


class HotpathUnavailable(HotpathError):  # noqa: N818 - the name the order API maps to 503
    """The node could not be reached or did not answer in time."""


class HotpathTimeoutError(HotpathUnavailable):
    """Connected, but the answer did not arrive within the timeout."""


class HotpathOutcomeUnknownError(HotpathError):
    """The request was sent but its answer cannot be known: the node may have acted on it (an order
    may be live). Resolve by client order id (a repeated NewOrder is answered with the existing
    order, flagged DUPLICATE); never report it as rejected. Raised as such when the node's answer
    could not be decoded."""


class HotpathConnectionLostError(HotpathOutcomeUnknownError):
    """The connection broke after the request was sent: its outcome is unknown."""


class HotpathProtocolError(HotpathError):
    """The node refused a frame (``code`` from its ProtocolReject): the refused request was not done,
    or (``code`` None) it answered with a message of the wrong kind."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class BookCopy:
    """A halted symbol's working orders as a node held them at ``seq`` (``export_book``): resting
    orders in priority order (bids best first, then asks), then waiting stops in trigger order."""

    symbol: str
    seq: int
    checksum: int  # the symbol's book checksum at ``seq``
    orders: tuple[RestingOrder, ...]


class BookExportRefusedError(HotpathError):
    """The node refused to export a symbol's book (it is not halted, or unknown there)."""

    def __init__(self, symbol: str, reason: RejectReason) -> None:
        super().__init__(f"the node refused to export {symbol}'s book: {reason.name}")
        self.symbol = symbol
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Answer:
    """Every frame answering one request, with its flags."""

    frames: tuple[tuple[Message, int], ...]
    resent: bool = False

    @property
    def messages(self) -> list[Message]:
        return [message for message, _ in self.frames]

    @property
    def duplicate(self) -> bool:
        return any(flags & Flag.DUPLICATE for _, flags in self.frames)

    @property
    def replaced(self) -> bool:
        return any(flags & Flag.REPLACED for _, flags in self.frames)


_request_ids = itertools.count(1)
_request_ids_lock = threading.Lock()


def next_request_id() -> int:
    with _request_ids_lock:
        return next(_request_ids)


PoolKey = tuple[str, int, str]  # host, port, the session key's fingerprint ("" without a logon)


def _pool_key(address: tuple[str, int], credential: SessionKey | None) -> PoolKey:
    return (*address, credential.fingerprint if credential is not None else "")


class _Connection:
    """One socket and the bytes read from it that no request has claimed yet."""

    def __init__(
        self, address: tuple[str, int], connect_timeout: float, credential: SessionKey | None = None
    ) -> None:
        self.address = address
        self.pool_key = _pool_key(address, credential)
        try:
            self.sock = socket.create_connection(address, timeout=connect_timeout)
        except OSError as exc:  # refused, unreachable, timed out
            raise HotpathUnavailable(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.frames: dict[int, list[tuple[Message, int]]] = {}
        if credential is not None:
            try:
                self._logon(credential, time.monotonic() + connect_timeout)
            except BaseException as exc:
                self.close()
                if isinstance(exc, HotpathProtocolError):
                    raise
                raise HotpathUnavailable(f"cannot log on to {address[0]}:{address[1]}: {exc!r}") from exc

    def _logon(self, credential: SessionKey, deadline: float) -> None:
        challenge = self._await(0, deadline)
        if not isinstance(challenge, LogonChallenge):
            raise HotpathProtocolError(f"expected a logon challenge, got {type(challenge).__name__}")
        request_id = next_request_id()
        mac = credential.mac(bytes.fromhex(challenge.nonce))
        self.send(encode(Logon(request_id, credential.key_id, mac)), deadline)
        ack = self._await(request_id, deadline)
        if not isinstance(ack, LogonAck):
            raise HotpathProtocolError(f"expected a logon ack, got {type(ack).__name__}")

    def _await(self, request_id: int, deadline: float) -> Message:
        answer = self.complete(request_id)
        while answer is None:
            self.receive(deadline)
            answer = self.complete(request_id)
        return answer.messages[-1]

    def looks_alive(self) -> bool:
        """A pooled socket the node closed meanwhile reads as EOF; checking costs one syscall."""
        self.sock.settimeout(0)  # non-blocking for this peek; send and receive set their own timeouts
        try:
            peeked = self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: the idle connection is still open
        except OSError:
            return False  # reset
        del peeked  # EOF, or bytes nobody asked for: either way, not reusable
        return False

    def send(self, data: bytes, deadline: float) -> None:
        self.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
        self.sock.sendall(data)

    def receive(self, deadline: float) -> list[int]:
        """Read once, file the frames by request id; return the ids whose answer is now complete."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(_RECV_BYTES)
        if not chunk:
            raise ConnectionResetError("the node closed the connection")
        self.buffer += chunk
        try:
            frames, consumed = decode_stream(self.buffer)
        except ProtocolError as exc:
            raise HotpathOutcomeUnknownError(
                f"undecodable answer from the node ({exc}): the request may have been done; "
                "query by client order id"
            ) from exc
        del self.buffer[:consumed]
        completed = []
        for message, flags in frames:
            if isinstance(message, ProtocolReject):
                raise HotpathProtocolError(f"node rejected request {message.request_id}", message.code)
            self.frames.setdefault(message.request_id, []).append((message, flags))
            if flags & Flag.LAST:
                completed.append(message.request_id)
        return completed

    def complete(self, request_id: int) -> Answer | None:
        frames = self.frames.get(request_id)
        if not frames or not frames[-1][1] & Flag.LAST:
            return None
        del self.frames[request_id]
        return Answer(tuple(frames))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _Pool:
    """Idle connections per address, shared by every client in the process."""

    def __init__(self) -> None:
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._lock = threading.Lock()

    def acquire(
        self, address: tuple[str, int], connect_timeout: float, credential: SessionKey | None = None
    ) -> _Connection:
        key = _pool_key(address, credential)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                return _Connection(address, connect_timeout, credential)
            if connection.looks_alive():
                return connection
            connection.close()

    def release(self, connection: _Connection) -> None:
        if connection.frames or connection.buffer:
            connection.close()  # leftovers from an abandoned request must not reach the next one
            return
        with self._lock:
            self._idle.setdefault(connection.pool_key, []).append(connection)

    def clear(self) -> None:
        with self._lock:
            connections = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in connections:
            connection.close()


POOL = _Pool()


def close_pooled_connections() -> None:
    POOL.clear()


class HotpathClient:
    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        credential: SessionKey | None = None,
    ) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.credential = credential  # the session key each new connection logs on with

    def __repr__(self) -> str:
        return f"HotpathClient({self.address[0]}:{self.address[1]})"

    # ---- requests ------------------------------------------------------------------------------

    def request(self, message: Message) -> list[Message]:
        return self.exchange(message).messages

    def exchange(self, message: Message) -> Answer:
        """Send one request, return its whole answer (re-sending once if idempotent, see above)."""
        try:
            return self._exchange_once(message)
        except HotpathConnectionLostError:
            if not isinstance(message, _IDEMPOTENT):
                raise
        answer = self._exchange_once(message)
        return Answer(answer.frames, resent=True)

    def pipeline(self, messages: Sequence[Message], window: int = DEFAULT_PIPELINE_WINDOW) -> list[Answer]:
        """Send many requests with up to ``window`` in flight; answers in the order of ``messages``.

        The window keeps both directions flowing: sending everything before reading would stall
        once the node stops reading from a client that does not read its answers.
        """
        stamped = [m._replace(request_id=next_request_id()) for m in messages]
        answers: dict[int, Answer] = {}
        connection = POOL.acquire(self.address, self.connect_timeout, self.credential)
        try:
            sent = 0
            waiting: set[int] = set()  # request ids in flight
            while sent < len(stamped) or waiting:
                deadline = time.monotonic() + self.timeout
                if sent < len(stamped) and len(waiting) < window:
                    batch = stamped[sent : sent + window - len(waiting)]
                    connection.send(b"".join(encode(m) for m in batch), deadline)
                    waiting.update(m.request_id for m in batch)
                    sent += len(batch)
                for request_id in connection.receive(deadline):
                    answer = connection.complete(request_id)
                    if answer is not None and request_id in waiting:
                        waiting.discard(request_id)
                        answers[request_id] = answer
        except BaseException as exc:
            connection.close()
            _raise_translated(exc)
        POOL.release(connection)
        return [answers[m.request_id] for m in stamped]

    def _exchange_once(self, message: Message) -> Answer:
        message = message._replace(request_id=next_request_id())
        frame = encode(message)
        connection = POOL.acquire(self.address, self.connect_timeout, self.credential)
        deadline = time.monotonic() + self.timeout
        try:
            connection.send(frame, deadline)
            answer = connection.complete(message.request_id)
            while answer is None:
                connection.receive(deadline)
                answer = connection.complete(message.request_id)
        except BaseException as exc:
            connection.close()
            _raise_translated(exc)
        POOL.release(connection)
        return answer

    # ---- conveniences --------------------------------------------------------------------------

    def submit(
        self,
        client_order_id: str,
        account: str,
        symbol: str,
        side: Side,
        quantity: int,
        price: int = 0,
        order_type: OrderType = OrderType.LIMIT,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST,
    ) -> Answer:
        flags = (ORDER_FLAG_POST_ONLY if post_only else 0) | (
            int(self_trade_prevention) << ORDER_FLAG_STP_SHIFT
        )
        order = NewOrder(
            0, client_order_id, account, symbol, side, order_type, time_in_force, flags, quantity, price
        )
        return self.exchange(order)

    def cancel(self, account: str, symbol: str, order_id: int) -> Answer:
        return self.exchange(Cancel(0, account, symbol, order_id))

    def replace(self, account: str, symbol: str, order_id: int, quantity: int, price: int) -> Answer:
        return self.exchange(Replace(0, account, symbol, order_id, quantity, price))

    def heartbeat(self) -> Heartbeat:
        answer = self.exchange(Heartbeat(0, time.time_ns()))
        return _single(answer, Heartbeat)

    def export_book(self, symbol: str) -> BookCopy:
        """Every working order of the halted ``symbol`` (an admin session's request)."""
        messages = self.exchange(BookExport(0, symbol)).messages
        last = messages[-1]
        if isinstance(last, Reject):
            raise BookExportRefusedError(symbol, RejectReason(last.reason))
        if not isinstance(last, BookExported):
            raise HotpathProtocolError(f"expected BookExported, got {type(last).__name__}")
        orders = [m for m in messages[:-1] if isinstance(m, RestingOrder)]
        if len(orders) != last.orders or len(orders) != len(messages) - 1:
            raise HotpathProtocolError(f"BookExported counts {last.orders} orders, {len(orders)} came")
        return BookCopy(last.symbol, last.seq, last.checksum, tuple(orders))

    def snapshot(self, symbol: str = "") -> Snapshot:
        """Force a snapshot write on the node; its seq and checksum (of ``symbol``'s book if given)."""
        return _single(self.exchange(SnapshotRequest(0, symbol)), Snapshot)


def _single(answer: Answer, kind: type[_M]) -> _M:
    message = answer.messages[-1]
    if not isinstance(message, kind):
        raise HotpathProtocolError(f"expected {kind.__name__}, got {type(message).__name__}")
    return message


def _raise_translated(exc: BaseException) -> NoReturn:
    """Re-raise socket-level failures as the client's exceptions; anything else unchanged."""
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        raise HotpathTimeoutError(f"no answer in time from the node: {exc!r}") from exc
    if isinstance(exc, OSError):
        raise HotpathConnectionLostError(f"connection to the node broke: {exc!r}") from exc
    raise exc
