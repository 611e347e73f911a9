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

from meridian.protocol import Flag, Message, decode_stream, encode

LAST = int(Flag.LAST)
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

    def __init__(self, port: int, send_flags: int = 0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.send_flags = send_flags
        self.buffer = b""
        self.sent_at: dict[int, int] = {}
        self.scheduled_at: dict[int, int] = {}
        self.result = RunResult()

    def send(self, messages: list[Message], scheduled_ns: list[int] | None = None) -> None:
        data = b"".join(encode(m, self.send_flags) for m in messages)
        now = time.perf_counter_ns()
        for i, message in enumerate(messages):
            self.sent_at[message.request_id] = now
            self.scheduled_at[message.request_id] = now if scheduled_ns is None else scheduled_ns[i]
        self.sock.setblocking(True)
        self.sock.sendall(data)
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
        self.buffer += chunk
        frames, consumed = decode_stream(self.buffer)
        self.buffer = self.buffer[consumed:]
        completed = 0
        result = self.result
        for message, flags in frames:
            if flags & LAST:
                request_id = message.request_id
                result.service_ns.append(now - self.sent_at.pop(request_id))
                result.latencies_ns.append(now - self.scheduled_at.pop(request_id))
                completed += 1
        if completed:
            result.finished_ns = now
        return completed

    def close(self) -> None:
        self.sock.close()


def paced(port: int, stream: Iterator[Message], rate: int, seconds: float, send_flags: int = 0) -> RunResult:
    """Request ``k`` is due at ``start + k / rate``; every request due is sent at once (a client that
    fell behind catches up in a burst), and its latency counts from when it was due."""
    connection = Connection(port, send_flags)
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
    port: int, stream: Iterator[Message], count: int, window: int, send_flags: int = 0
) -> RunResult:
    """Keep ``window`` requests in flight until ``count`` are answered (a saturation run: latency
    from the actual send, since nothing is scheduled)."""
    connection = Connection(port, send_flags)
    cpu0 = time.process_time()
    connection.result.started_ns = time.perf_counter_ns()
    sent = 0
    while sent < count or connection.sent_at:
        room = min(window - len(connection.sent_at), count - sent)
        if room > 0:
            connection.send([next(stream) for _ in range(room)])
            sent += room
        connection.receive(1.0)
    connection.result.client_cpu_s = time.process_time() - cpu0
    connection.close()
    return connection.result
