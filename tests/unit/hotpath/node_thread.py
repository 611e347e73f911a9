"""A matching node running in-process on its own event loop thread, for tests that talk TCP to it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from meridian.protocol import Flag, Message, decode_stream, encode
from meridian_hotpath.app import NodeConfig, RunningNode, run
from meridian_hotpath.follower import Follower
from meridian_hotpath.follower_link import FollowerThread
from meridian_hotpath.publisher import StreamSink

T = TypeVar("T")
WAIT = 10.0  # seconds before a test gives up waiting for a condition (never an assertion on time)


class NodeThread:
    def __init__(
        self, config: NodeConfig, sink: StreamSink | None = None, executions_sink: StreamSink | None = None
    ) -> None:
        self.node = RunningNode(config, sink, executions_sink)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, name="matching-node", daemon=True)
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise TimeoutError("node did not start")
        if self._error is not None:
            raise self._error

    @property
    def port(self) -> int:
        port: int = self.node.port
        return port

    def follower(self) -> Follower:
        """The journal follower (a thread of this process in tests), once it has started."""
        link = self.node.follower
        assert isinstance(link, FollowerThread)
        deadline = time.monotonic() + WAIT
        while (link.follower is None or not hasattr(link.follower, "engine")) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert link.follower is not None
        return link.follower

    def _run(self) -> None:
        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            try:
                await self.node.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return 1
            self._ready.set()
            await self.node.stopped.wait()
            await self.node.shutdown()
            return 0 if self.node.failure is None else 1

        self.exit_code = run(main())

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the node's loop thread (engine state is single-writer)."""
        assert self._loop is not None

        async def wrapper() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(WAIT)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Poll ``condition`` on the node's loop until it holds (WAIT bounds a hang; nothing is timed)."""
        assert self._loop is not None

        async def poll() -> None:
            while not condition():
                await asyncio.sleep(0.002)

        asyncio.run_coroutine_threadsafe(poll(), self._loop).result(WAIT)

    def wait_stopped(self) -> None:
        """Until the node has shut down by itself (after a fatal failure); WAIT bounds a hang."""
        self._thread.join(WAIT)
        if self._thread.is_alive():
            raise TimeoutError("node did not stop")

    def stop(self) -> None:
        if self._thread.is_alive():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self.node.stopped.set)
            self._thread.join(WAIT)


class RawConnection:
    """A bare socket speaking frames, for tests that misbehave on purpose."""

    def __init__(self, port: int, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = b""

    def send(self, *messages: Message) -> None:
        self.sock.sendall(b"".join(encode(message) for message in messages))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frames(self, count: int) -> list[tuple[Message, int]]:
        """Read until ``count`` frames arrived (or the node closed the connection)."""
        frames: list[tuple[Message, int]] = []
        while len(frames) < count:
            decoded, consumed = decode_stream(self.buffer)
            self.buffer = self.buffer[consumed:]
            frames += decoded
            if len(frames) >= count:
                break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.buffer += chunk
        return frames

    def read_answers(self, request_ids: set[int]) -> set[int]:
        """Read until every request in ``request_ids`` has its LAST frame; return those answered."""
        answered: set[int] = set()
        while not request_ids <= answered:
            decoded, consumed = decode_stream(self.buffer)
            self.buffer = self.buffer[consumed:]
            answered |= {message.request_id for message, flags in decoded if flags & Flag.LAST}
            if request_ids <= answered:
                break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.buffer += chunk
        return answered

    def at_eof(self) -> bool:
        """Whether the node closed the connection (after whatever it sent first)."""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return True
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()
