"""A TCP proxy on loopback between a shard's primary and its standby that can delay or cut the link.

Every chunk read from either side is written to the other ``delay`` seconds later, in order (a
slow link, not a reordering one). ``cut()`` closes every connection through it and refuses new ones
(accepts and closes them at once) until ``heal()``: a link that broke and stays broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from concurrent.futures import Future


class FaultProxy:
    def __init__(self, target: tuple[str, int], delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self.cut_now = False
        self.connections = 0  # accepted while healthy
        self._writers: set[asyncio.StreamWriter] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        self._ready.result(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._accept, sock=self._listener)
            self._ready.set_result(None)
            await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(main())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()  # (when due, chunk): in order
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    break
                writer.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            writer.close()

        sender = asyncio.create_task(deliver())
        try:
            while chunk := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + self.delay, chunk))
        except ConnectionError:
            pass
        finally:
            queue.put_nowait((loop.time() + self.delay, b""))
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await sender
            self._writers.discard(writer)

    def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones until ``heal``."""

        def close_all() -> None:
            self.cut_now = True
            for writer in list(self._writers):
                transport = writer.transport
                transport.abort()  # a reset, not a graceful end: the link broke
            self._writers.clear()

        self._loop.call_soon_threadsafe(close_all)

    def heal(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "cut_now", False)

    def close(self) -> None:
        def stop() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
