"""The wire benchmark's client: one connection, paced or pipelined, timing every request.

Paced runs are corrected for coordinated omission, as wrk2 and HdrHistogram's corrected mode
are: request ``k`` of a run is *scheduled* at ``start + k / rate``, and its latency runs from that
scheduled time to the ``recv`` that completes its answer. When the client (or the server) falls
behind, the overdue requests go out late in one burst and their wait counts, instead of vanishing
from a latency measured from the actual send. The latency from the actual send (the service time)
is kept beside it, labelled as such.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from meridian.protocol import HEADER, Flag, Logon, LogonAck, LogonChallenge, Message, decode_stream, encode
from meridian.session_auth import SessionKey

LAST = int(Flag.LAST)
_HEADER = HEADER.unpack_from  # (length, version, type, flags, request id): all a client needs here
START_DELAY_NS = 10_000_000  # the first request is scheduled this long after the connection opens


@dataclass
class RunResult:
    """One run on one connection."""

    latencies_ns: list[int] = field(default_factory=list)  # from the scheduled (paced) or actual send
    service_ns: list[int] = field(default_factory=list)  # from the actual send, always
    started_ns: int = 0  # first scheduled (paced) or actual (pipelined) send
    finished_ns: int = 0  # the recv that completed the last answer
    client_cpu_s: float = 0.0

    @property
    def answered(self) -> int:
        return len(self.service_ns)

    @property
    def wall_s(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9


class Connection:
    """One socket; ``receive`` timestamps every completed answer by request id.

    ``send_flags`` go on every request frame: the echo floor sends LAST so that its echo completes.
    """

    def __init__(self, port: int, send_flags: int = 0, credential: SessionKey | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if credential is not None:
            logon(self.sock, credential)  # once per connection, before the clock starts
        self.sock.setblocking(False)
        self.send_flags = send_flags
        self.buffer = b""
        self.sent_at: dict[int, int] = {}
        self.scheduled_at: dict[int, int] = {}
        self.result = RunResult()

    def send(self, messages: list[Message], scheduled_ns: list[int] | None = None) -> None:
        self.send_frames(
            [encode(m, self.send_flags) for m in messages], [m.request_id for m in messages], scheduled_ns
        )

    def send_frames(
        self, frames: list[bytes], request_ids: list[int], scheduled_ns: list[int] | None = None
    ) -> None:
        """Send already encoded request frames (the saturation run encodes its requests before it starts)."""
        now = time.perf_counter_ns()
        sent_at, scheduled_at = self.sent_at, self.scheduled_at
        for i, request_id in enumerate(request_ids):
            sent_at[request_id] = now
            scheduled_at[request_id] = now if scheduled_ns is None else scheduled_ns[i]
        self.sock.setblocking(True)
        self.sock.sendall(b"".join(frames))
        self.sock.setblocking(False)

    def receive(self, timeout: float) -> int:
        """Wait up to ``timeout`` for data; return how many answers it completed."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return 0
        chunk = self.sock.recv(1 << 20)
        now = time.perf_counter_ns()
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer = self.buffer + chunk if self.buffer else chunk
        completed = 0
        result = self.result
        offset, end = 0, len(buffer)
        while end - offset >= 16:  # answers are counted by their headers: no decoding on the client
            length, _, _, flags, request_id = _HEADER(buffer, offset)
            if end - offset < length + 4:
                break
            offset += length + 4
            if flags & LAST:
                result.service_ns.append(now - self.sent_at.pop(request_id))
                result.latencies_ns.append(now - self.scheduled_at.pop(request_id))
                completed += 1
        self.buffer = buffer[offset:]
        if completed:
            result.finished_ns = now
        return completed

    def close(self) -> None:
        self.sock.close()


def logon(sock: socket.socket, credential: SessionKey) -> None:
    """The session logon (``meridian.session_auth``) on a blocking socket."""
    sock.settimeout(10)
    buffer = b""
    frames: list[Message] = []
    while len(frames) < 1:
        buffer += sock.recv(4096)
        decoded, consumed = decode_stream(buffer)
        buffer, frames = buffer[consumed:], [m for m, _ in decoded]
    challenge = frames[0]
    assert isinstance(challenge, LogonChallenge), challenge
    sock.sendall(encode(Logon(1, credential.key_id, credential.mac(bytes.fromhex(challenge.nonce)))))
    frames = []
    while len(frames) < 1:
        buffer += sock.recv(4096)
        decoded, consumed = decode_stream(buffer)
        buffer, frames = buffer[consumed:], [m for m, _ in decoded]
    assert isinstance(frames[0], LogonAck), frames[0]
    sock.settimeout(None)


def paced(
    port: int,
    stream: Iterator[Message],
    rate: int,
    seconds: float,
    send_flags: int = 0,
    credential: SessionKey | None = None,
) -> RunResult:
    """Request ``k`` is due at ``start + k / rate``; every request due is sent at once (a client that
    fell behind catches up in a burst), and its latency counts from when it was due."""
    connection = Connection(port, send_flags, credential)
    interval = 1_000_000_000 / rate
    total = max(1, int(rate * seconds))
    cpu0 = time.process_time()
    start = time.perf_counter_ns() + START_DELAY_NS
    connection.result.started_ns = start
    sent = 0
    while sent < total or connection.sent_at:
        now = time.perf_counter_ns()
        due = min(total, max(0, int((now - start) // interval) + 1)) - sent if now >= start else 0
        if due > 0:
            scheduled = [start + round((sent + i) * interval) for i in range(due)]
            connection.send([next(stream) for _ in range(due)], scheduled)
            sent += due
        if sent < total:
            wait = max(0.0, (start + sent * interval - time.perf_counter_ns()) / 1e9)
        else:
            wait = 1.0
        connection.receive(wait)
    connection.result.client_cpu_s = time.process_time() - cpu0
    connection.close()
    return connection.result


def pipelined(
    port: int,
    stream: Iterator[Message],
    count: int,
    window: int,
    send_flags: int = 0,
    credential: SessionKey | None = None,
) -> RunResult:
    """Keep ``window`` requests in flight until ``count`` are answered (a saturation run: latency
    from the actual send, since nothing is scheduled)."""
    connection = Connection(port, send_flags, credential)
    requests = [next(stream) for _ in range(count)]
    frames = [encode(request, send_flags) for request in requests]
    request_ids = [request.request_id for request in requests]
    cpu0 = time.process_time()
    connection.result.started_ns = time.perf_counter_ns()
    sent = 0
    while sent < count or connection.sent_at:
        room = min(window - len(connection.sent_at), count - sent)
        if room > 0:
            connection.send_frames(frames[sent : sent + room], request_ids[sent : sent + room])
            sent += room
        connection.receive(1.0)
    connection.result.client_cpu_s = time.process_time() - cpu0
    connection.close()
    return connection.result
