"""A bare asyncio echo server on loopback: the floor the wire benchmark compares the node against.

It writes back every byte it reads, on the same event loop the node runs (uvloop when installed),
with TCP_NODELAY as the node sets it: what remains of a node round trip without decoding,
matching, journaling or encoding. It binds port 0 and prints ``echo ready port=N`` once it
listens; it runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from typing import cast

READY_PREFIX = "echo ready port="


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve() -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY_PREFIX}{port}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    return 0


def main() -> int:
    factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop  # noqa: PLC0415 - the node's loop when installed, so the floor runs on the same

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve())


if __name__ == "__main__":
    sys.exit(main())
