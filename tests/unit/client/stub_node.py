"""A scripted stand-in for the matching node: answers whatever the test's script says."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from meridian.protocol import Flag, Message, decode_stream, encode

CLOSE = "close"  # a script's answer that drops the connection instead of answering
Script = Callable[[Message, int], list[tuple[Message, int]] | str | bytes | None]


class StubNode:
    """Accepts connections on loopback; for each request frame, asks ``script`` what to send back.

    The script gets the request and how many requests came before it on any connection; it returns
    frames with flags, raw bytes (sent as they are), ``CLOSE``, or None for silence.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Message] = []
        self.connections = 0
        self.open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                frames, consumed = decode_stream(buffer)
                buffer = buffer[consumed:]
                out = b""
                for message, _ in frames:
                    index = len(self.received)
                    self.received.append(message)
                    answer = self.script(message, index)
                    if answer == CLOSE:
                        conn.sendall(out)
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    if isinstance(answer, list):
                        out += b"".join(encode(m, flags) for m, flags in answer)
                    elif isinstance(answer, bytes):
                        out += answer
                if out:
                    conn.sendall(out)

    def drop_connections(self) -> None:
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.open.clear()

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()
        self.drop_connections()


def last(message: Message, flags: int = 0) -> list[tuple[Message, int]]:
    return [(message, flags | Flag.LAST)]
