"""Fan-out: each update encoded once, queued per subscribed connection, sent by each connection's
own task, so a slow client never holds up another.

Every connection has a bounded outbox. Trades and order updates are queued as they are and never
merged or dropped. A connection is closed with ``SLOW_CONSUMER`` (4008) and its queue freed when
its client stopped reading: a frame has waited ``slow_after_s`` to be written (the socket pushes
back) while ``max_queue`` messages or more are queued behind it; or, whatever its socket does, when
``max_backlog`` messages are queued (the memory bound). A client that is only late for a moment (a
burst, a descheduled reader, a congested link) catches up with one larger frame and is not closed:
judging by the queue alone, as Redis's hard limit does, closed readers that were keeping up.

A book has at most one queued message per connection: an update that finds one still queued is
merged into it (conflation, as venues do when a client falls behind: the client gets fewer,
larger updates and its book stays correct), so books never make a queue grow. A connection's task
sends everything queued at once as one frame (a JSON array): a busy feed costs one write per
client per wake-up rather than one per update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from meridian_gateway.access import Caller
from meridian_gateway.book import Book, merge_update, units_text
from meridian_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

SLOW_CONSUMER = 4008
MAX_FRAME_MESSAGES = 1000
BACKLOG_FACTOR = 8  # max_backlog, when not given: this many times max_queue
_SIDES = {1: "BUY", 2: "SELL", "BUY": "BUY", "SELL": "SELL"}

Send = Callable[[bytes], Any]  # awaitable: one text frame
Close = Callable[[int, str], Any]  # awaitable


class Client:
    """One connection's subscriptions and outbox; ``pump`` sends until the connection ends."""

    def __init__(
        self,
        caller: Caller,
        send: Send,
        close: Close,
        max_queue: int,
        metrics: GatewayMetrics,
        *,
        slow_after_s: float = 2.0,
        max_backlog: int = 0,
    ) -> None:
        self.caller = caller
        self.channels: set[str] = set()
        self._send, self._close = send, close
        self.max_queue = max_queue
        self.max_backlog = max(max_backlog or BACKLOG_FACTOR * max_queue, max_queue)
        self.slow_after_s = slow_after_s
        self.metrics = metrics
        self._items: deque[tuple[int, bytes | str]] = deque()  # (node ts, encoded message or a book key)
        self._books: dict[str, list[Any]] = {}  # symbol -> [message, node ts, encoded or None]
        self._ready = asyncio.Event()
        self.closing = False
        self.sent = 0

    @property
    def queued(self) -> int:
        return len(self._items)

    def enqueue(self, node_ts: int, encoded: bytes) -> None:
        if self.closing:
            return
        if len(self._items) >= self.max_backlog:
            self.drop_slow(f"slow consumer: {self.max_backlog} messages queued")
            return
        self._items.append((node_ts, encoded))
        self._ready.set()

    def enqueue_book(self, symbol: str, message: dict[str, Any], encoded: bytes | None) -> None:
        """Queue a book message, or merge it into the one still queued for ``symbol``."""
        if self.closing:
            return
        held = self._books.get(symbol)
        if held is None:
            self._books[symbol] = [message, message["node_ts"], encoded]
            self._items.append((message["node_ts"], symbol))
            self._ready.set()
        elif message["type"] == "book_snapshot":
            held[0], held[1], held[2] = message, message["node_ts"], encoded
        else:
            held[0], held[2] = merge_update(held[0], message), None
            self.metrics.conflated.inc()

    def forget_book(self, symbol: str) -> None:
        self._books.pop(symbol, None)

    def drop_slow(self, reason: str) -> None:
        self.closing = True
        self._items.clear()
        self._books.clear()
        self.metrics.slow_dropped.inc()
        log.warning("closing %s: %s", self.caller.principal, reason)
        self._ready.set()
        asyncio.get_running_loop().create_task(self._close(SLOW_CONSUMER, reason))

    def _frame(self) -> tuple[bytes, int, int]:
        """What is queued, as one frame: (frame, messages, oldest node ts)."""
        parts: list[bytes] = []
        oldest = 0
        items, books = self._items, self._books
        while items and len(parts) < MAX_FRAME_MESSAGES:
            node_ts, entry = items.popleft()
            if isinstance(entry, str):
                held = books.pop(entry, None)
                if held is None:
                    continue  # unsubscribed meanwhile
                node_ts = held[1]
                entry = held[2] if held[2] is not None else orjson.dumps(held[0])
            parts.append(entry)
            if node_ts and (not oldest or node_ts < oldest):
                oldest = node_ts
        return b"[" + b",".join(parts) + b"]", len(parts), oldest

    async def pump(self) -> None:
        metrics = self.metrics
        while not self.closing:
            if not self._items:
                self._ready.clear()
                await self._ready.wait()
                continue
            frame, count, oldest = self._frame()
            if not count:
                continue
            if not await self._write(frame):
                return
            self.sent += count
            metrics.frames.inc()
            metrics.messages.labels("all").inc(count)
            if oldest:
                metrics.fanout_latency.observe(max(0, time.time_ns() - oldest) / 1e9)

    async def _write(self, frame: bytes) -> bool:
        """Sends one frame; False when the client was closed as slow while it waited."""
        sending = asyncio.ensure_future(self._send(frame))
        try:
            while True:
                done, _ = await asyncio.wait((sending,), timeout=self.slow_after_s)
                if done:
                    sending.result()
                    return True
                if len(self._items) >= self.max_queue:
                    # The close ends the write too (sent, or the connection aborted); its outcome
                    # is retrieved so that it is not reported as never retrieved.
                    sending.add_done_callback(_retrieve)
                    self.drop_slow(
                        f"slow consumer: {self.max_queue} messages queued, "
                        f"a frame unread for {self.slow_after_s:g} s"
                    )
                    return False
        except asyncio.CancelledError:
            sending.cancel()
            raise

    def stop(self) -> None:
        self.closing = True
        self._ready.set()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Hub:
    """Channels -> clients; the sources' updates in, each client's outbox out."""

    def __init__(self, metrics: GatewayMetrics, price_scales: dict[str, int]) -> None:
        self.metrics = metrics
        self.price_scales = price_scales
        self.subscribers: dict[str, set[Client]] = {}
        self.accounts: dict[str, set[Client]] = {}
        self.books: dict[str, Book] = {}
        self._last_trade: dict[str, tuple[int, int]] = {}

    def book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book(symbol, self.price_scales.get(symbol, 2))
        return book

    # ---- subscriptions -------------------------------------------------------------------------

    def subscribe(self, client: Client, channel: str) -> None:
        if channel in client.channels:
            return
        client.channels.add(channel)
        self.subscribers.setdefault(channel, set()).add(client)
        if channel == "orders":
            assert client.caller.account is not None
            self.accounts.setdefault(client.caller.account, set()).add(client)
        elif channel.startswith("book."):
            self.send_snapshot(client, channel)
        self.metrics.subscriptions.inc()

    def send_snapshot(self, client: Client, channel: str) -> None:
        symbol = channel[5:]
        client.enqueue_book(symbol, self.book(symbol).snapshot(channel), None)

    def unsubscribe(self, client: Client, channel: str) -> None:
        if channel not in client.channels:
            return
        client.channels.discard(channel)
        self.subscribers.get(channel, set()).discard(client)
        if channel == "orders" and client.caller.account is not None:
            self.accounts.get(client.caller.account, set()).discard(client)
        elif channel.startswith("book."):
            client.forget_book(channel[5:])
        self.metrics.subscriptions.dec()

    def remove(self, client: Client) -> None:
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        client.stop()

    # ---- updates -------------------------------------------------------------------------------

    def on_market_data(self, record: dict[str, Any]) -> None:
        """One update of the node's market-data stream (``meridian_hotpath.marketdata``)."""
        kind = record.get("type")
        if kind == "book":
            self._on_book(record)
        elif kind == "trade":
            self._on_trade(record)

    def _on_book(self, record: dict[str, Any]) -> None:
        symbol = record["symbol"]
        channel = "book." + symbol
        outcome = self.book(symbol).apply(record, channel)
        if outcome is None:
            return
        _, message = outcome
        clients = self.subscribers.get(channel)
        if not clients:
            return
        encoded = orjson.dumps(message)
        for client in list(clients):
            client.enqueue_book(symbol, message, encoded)

    def _on_trade(self, record: dict[str, Any]) -> None:
        symbol = record["symbol"]
        key = (record["seq"], record["trade_id"])
        if key <= self._last_trade.get(symbol, (-1, -1)):
            return  # a re-sent trade this gateway already passed on
        self._last_trade[symbol] = key
        channel = "trades." + symbol
        clients = self.subscribers.get(channel)
        if not clients:
            return
        scale = record.get("price_scale", self.price_scales.get(symbol, 2))
        message = {
            "type": "trade",
            "channel": channel,
            "symbol": symbol,
            "trade_id": record["trade_id"],
            "price": units_text(record["price"], scale),
            "quantity": record["quantity"],
            "aggressor_side": _SIDES.get(record["aggressor_side"], "BUY"),
            "node_seq": record["seq"],
            "node_ts": record["timestamp_ns"],
        }
        encoded = orjson.dumps(message)
        for client in list(clients):
            client.enqueue(record["timestamp_ns"], encoded)

    def on_order(self, account: str, message: dict[str, Any]) -> None:
        clients = self.accounts.get(account)
        if not clients:
            return
        encoded = orjson.dumps(message)
        for client in list(clients):
            client.enqueue(0, encoded)

    def heartbeat(self, clients: list[Client]) -> None:
        encoded = orjson.dumps({"type": "heartbeat", "ts": time.time_ns()})
        for client in clients:
            with contextlib.suppress(RuntimeError):
                client.enqueue(0, encoded)
