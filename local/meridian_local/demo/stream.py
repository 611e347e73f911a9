"""``make demo``'s stream: alice on book.AAPL, trades.AAPL and orders while the session trades,
each message printed as it arrives (the gateway of ``make run``; ``meridian_client.stream``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials

from meridian_client.stream import BookKeeper, connect_token, describe, stream

CHANNELS = ("book.AAPL", "trades.AAPL", "orders")


class StreamWatcher:
    def __init__(self, gateway_url: str, credentials_file: Path, say: Callable[[str], None]) -> None:
        user = json.loads(credentials_file.read_text())["users"]["alice"]
        self.token = connect_token(Credentials(user["access_key"], user["secret"]), "us-east-1")
        self.url, self.say = gateway_url, say
        self.messages: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-stream", daemon=True)

    def start(self) -> StreamWatcher:
        self._thread.start()
        self._subscribed.wait(10)
        return self

    def _run(self) -> None:
        books: dict[str, BookKeeper] = {}

        async def follow() -> None:
            async for message in stream(self.url, self.token, CHANNELS, books):
                self.messages.append(message)
                if message["type"] == "subscribed":
                    self._subscribed.set()
                if message["type"] not in ("welcome", "subscribed", "heartbeat"):
                    self.say(f"  [alice's stream] {describe(message, books)}")

        self._task = self.loop.create_task(follow())
        with contextlib.suppress(asyncio.CancelledError, Exception):
            self.loop.run_until_complete(self._task)
        self._subscribed.set()

    def stop(self, linger: float = 1.0) -> int:
        """Stop after ``linger`` seconds more; return how many messages streamed."""
        self._thread.join(linger)
        self.loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)
        return len(self.messages)
