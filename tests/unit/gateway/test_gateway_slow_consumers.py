"""When the gateway closes a connection as a slow consumer: a client that stopped reading (a frame
unwritten for ``slow_after_s`` with ``max_queue`` queued behind it) or one whose backlog reached
``max_backlog``; never a client that was only late for a moment. The socket is a future the test
resolves, so each case is decided by what the client did, not by how fast this machine is."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from meridian_gateway.access import Caller
from meridian_gateway.hub import SLOW_CONSUMER, Client
from meridian_gateway.metrics import GatewayMetrics


class Socket:
    """A connection whose writes complete only when ``release`` says so."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()

    async def send(self, frame: bytes) -> None:
        await self.gate.wait()
        self.frames.append(orjson.loads(frame))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def release(self) -> None:
        self.gate.set()


def closed(socket: Socket) -> tuple[int, str] | None:
    return socket.closed  # read through a call: each read sees what the pump did meanwhile


def closing(client: Client) -> bool:
    return client.closing


def client_on(socket: Socket, **limits: Any) -> Client:
    return Client(
        Caller("p", "trader", "ACC-ALICE"), socket.send, socket.close, 50, GatewayMetrics(), **limits
    )


async def until(condition: Any) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


def queue(client: Client, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        client.enqueue(0, orjson.dumps({"type": "trade", "n": n}))


def test_a_client_that_stops_reading_is_closed_once_a_frame_waited_with_a_full_queue() -> None:
    async def run() -> None:
        socket = Socket()
        client = client_on(socket, slow_after_s=0.01, max_backlog=10_000)
        pump = asyncio.get_running_loop().create_task(client.pump())
        queue(client, 1)
        await asyncio.sleep(0.05)  # the first frame waits; one message behind it is not a full queue
        assert closed(socket) is None
        assert not closing(client)
        queue(client, 50, start=1)
        await until(lambda: socket.closed is not None)
        assert closed(socket) == (
            SLOW_CONSUMER,
            "slow consumer: 50 messages queued, a frame unread for 0.01 s",
        )
        assert client.queued == 0  # its queue is freed
        queue(client, 10)  # nothing more is queued for a closed client
        assert client.queued == 0
        await pump
        socket.release()

    asyncio.run(run())


def test_a_client_that_was_only_late_gets_its_backlog_in_one_frame_and_stays() -> None:
    async def run() -> None:
        socket = Socket()
        client = client_on(socket, slow_after_s=60.0, max_backlog=10_000)
        pump = asyncio.get_running_loop().create_task(client.pump())
        queue(client, 1)
        await asyncio.sleep(0)
        queue(client, 400, start=1)  # eight times max_queue arrives while the first frame waits
        socket.release()  # then the client reads again
        await until(lambda: sum(len(frame) for frame in socket.frames) == 401)
        assert [len(frame) for frame in socket.frames] == [1, 400]
        assert [m["n"] for frame in socket.frames for m in frame] == list(range(401))
        assert closed(socket) is None
        assert not closing(client)
        client.stop()
        await pump

    asyncio.run(run())


def test_the_backlog_bound_closes_a_client_at_once_whatever_its_socket_does() -> None:
    async def run() -> None:
        socket = Socket()
        client = client_on(socket, slow_after_s=60.0, max_backlog=120)
        pump = asyncio.get_running_loop().create_task(client.pump())
        queue(client, 1)
        await asyncio.sleep(0)
        queue(client, 120, start=1)
        assert not closing(client)  # 120 queued behind the frame being written
        queue(client, 1, start=121)
        assert closing(client)
        await until(lambda: socket.closed is not None)
        assert closed(socket) == (SLOW_CONSUMER, "slow consumer: 120 messages queued")
        socket.release()
        await pump

    asyncio.run(run())


def test_the_backlog_bound_defaults_to_eight_queues_and_is_never_below_one() -> None:
    socket = Socket()
    assert client_on(socket).max_backlog == 400
    assert client_on(socket, max_backlog=10).max_backlog == 50
