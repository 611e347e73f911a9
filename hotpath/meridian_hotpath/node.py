"""The matching node's request path: bytes in, the native core, answers out when the journal allows.

Everything here runs on the event loop thread, the engine's single writer, and does little: a
connection's bytes go to the native core (``MatchingEngine.feed``), which matches every complete
request frame and returns the encoded answers and the journal records; the committer
(``commit.py``) writes the records and releases the answers by the ack mode (``fsync``: once the
syncer thread made them durable; ``async``: once written). Heartbeat answers go out at once.

Nothing else happens on this thread: market data, the drop copy and snapshots are the journal
follower's (``follower.py``, another process), which applies the durable journal to its own engine.
A client's SNAPSHOT_REQUEST is answered with the snapshot the follower writes for it; requests that
arrive while one is being written share it. Each waiting request counts against its connection's
owed answers (so a client that piles them up stops being read), and a connection may make only so
many (``ConnectionLimits.snapshot_burst``, then one per ``snapshot_interval``; more is refused with
``SNAPSHOT_RATE_LIMITED`` and the connection closed).

A BOOK_EXPORT (an admin session's, the first step of moving a symbol to another shard) copies the
halted symbol's working orders as they stand after every request read before it, and answers once
every answer owed before it is out: the copy never shows an order the journal could still lose.

Latency is measured from the moment a connection's bytes are read to the moment their answers are
handed to the socket, so queueing inside the node shows in ``meridian_request_latency_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from meridian.domain import RejectReason
from meridian.protocol import (
    BookExported,
    Flag,
    ProtocolRejectCode,
    Reject,
    RestingOrder,
    Snapshot,
    encode,
)
from meridian_hotpath.commit import AckMode, AnswerChannel, Batch, Committer
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.engine.native import FEED_BOOK_EXPORT, FEED_DONE, FEED_SNAPSHOT_REQUEST
from meridian_hotpath.follower_link import FollowerLink, SnapshotUnavailableError
from meridian_hotpath.journal import JournalWriter
from meridian_hotpath.journal_sync import SYNC_BUCKET_UPPER_SECONDS
from meridian_hotpath.metrics import NodeMetrics
from meridian_hotpath.snapshot import CHECKSUM_MASK
from meridian_hotpath.volatility import DEFAULT_INTERVAL, VolatilityTracker

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_EVERY = 100_000
DEFAULT_DELIVERY_TIMEOUT = 5.0  # seconds the final snapshot waits for the publishers at shutdown
LAST = int(Flag.LAST)
HEARTBEAT_SIZE = 24

__all__ = ["AckMode", "AnswerChannel", "MatchingNode"]


class EngineFailedError(Exception):
    """The engine raised while processing input: the node stops rather than run on doubtful state."""


class FeedingChannel(AnswerChannel, Protocol):
    """A connection as the node feeds it: answers go to it, the start of an incomplete frame stays."""

    permissions: int  # what the connection's session may send (meridian.session_auth PERM_*)
    account: bytes | None  # the one account it may trade for (NUL-padded), or None for any

    def keep(self, rest: bytes) -> None: ...

    def allow_snapshot_request(self, received_ns: int) -> bool: ...


class MatchingNode:
    def __init__(
        self,
        engine: MatchingEngine,
        journal: JournalWriter,
        metrics: NodeMetrics,
        follower: FollowerLink,
        ack_mode: AckMode = AckMode.FSYNC,
        on_fatal: Callable[[BaseException], None] | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.metrics = metrics
        self.follower = follower
        self.ack_mode = ack_mode
        self.delivery_timeout = delivery_timeout
        self._on_fatal = on_fatal
        self._loop = asyncio.get_running_loop()
        self.committer = Committer(engine, journal, ack_mode, self._released, self._fail)
        self._snapshot_in_flight: asyncio.Future[tuple[int, int, dict[str, int]]] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.volatility = VolatilityTracker()
        self._volatility_sampler: asyncio.Task[None] | None = None
        self.failed = False
        self.extra_gauges: list[Callable[[], dict[str, float]]] = []  # e.g. the shard role's
        # How far the follower may publish, beyond the durable seq (a replicated shard's primary).
        self.publish_limit: Callable[[], int | None] = lambda: None
        self._bind_metrics()

    # ---- requests ------------------------------------------------------------------------------

    def feed(self, channel: FeedingChannel, data: bytes, received_ns: int) -> None:
        """Process every complete request frame in ``data`` read from ``channel`` at ``received_ns``."""
        if self.failed:
            return
        engine = self.engine
        offset = 0
        permissions, account = channel.permissions, channel.account
        while True:
            try:
                offset, held, immediate, changes, stop, request_id, detail = engine.feed(
                    data, offset, permissions, account
                )
            except Exception as exc:  # MemoryError: the engine's state is in doubt
                self._fail(EngineFailedError(f"engine raised at seq {engine.seq}: {exc!r}"))
                return
            if immediate:
                channel.send(immediate)
                self.metrics.observe_latency_n(
                    "heartbeat",
                    (time.perf_counter_ns() - received_ns) / 1e9,
                    len(immediate) // HEARTBEAT_SIZE,
                )
            if changes:
                self.committer.hold(channel, held, changes, received_ns)
            if stop == FEED_DONE:
                break
            if stop == FEED_SNAPSHOT_REQUEST:
                assert isinstance(detail, str)
                if not channel.allow_snapshot_request(received_ns):
                    self.metrics.count_request("snapshot_request", "rate_limited")
                    channel.reject_and_close(request_id, ProtocolRejectCode.SNAPSHOT_RATE_LIMITED)
                    return
                self._snapshot_requested(request_id, detail, channel, received_ns)
                continue
            if stop == FEED_BOOK_EXPORT:
                assert isinstance(detail, str)
                self._book_export(request_id, detail, channel, received_ns)
                continue
            assert isinstance(detail, int)
            channel.reject_and_close(request_id, ProtocolRejectCode(detail))
            return
        if offset < len(data):
            channel.keep(data[offset:])

    def after_answers(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every answer owed so far has been written (e.g. before a close)."""
        self.committer.after_answers(action)

    def _released(self, batch: Batch) -> None:
        """A batch's answers are out: its requests' latency."""
        now = time.perf_counter_ns()
        observe = self.metrics.observe_latency_n
        for received_ns, requests in batch.received:
            observe("order", (now - received_ns) / 1e9, requests)
        self.metrics.observe_commit(batch.records)

    # ---- snapshots -----------------------------------------------------------------------------

    def _snapshot_requested(
        self, request_id: int, symbol: str, channel: AnswerChannel, received_ns: int
    ) -> None:
        if symbol and symbol not in self.engine.instruments:
            reject = Reject(request_id, self.engine.seq, 0, "", symbol, RejectReason.UNKNOWN_SYMBOL)
            channel.send(encode(reject, LAST))
            self.metrics.count_request("snapshot_request", "rejected")
            return
        written = self._snapshot_in_flight
        if written is None or written.done():
            # The follower writes it once the journal holds everything answered so far (what this
            # client has seen) and every trade it covers is delivered; later requests share it.
            written = self._snapshot_in_flight = self.follower.snapshot(self.engine.seq)
        channel.held(1)  # owed until the snapshot is written: counts against the client's limit

        async def answer_when_written() -> None:
            try:
                seq, checksum, books = await asyncio.shield(written)
            except SnapshotUnavailableError:
                channel.released(1)
                channel.reject_and_close(request_id, ProtocolRejectCode.MALFORMED)
                self.metrics.count_request("snapshot_request", "failed")
                return
            value = books[symbol] if symbol else checksum
            channel.send(encode(Snapshot(request_id, seq, value & CHECKSUM_MASK), LAST))
            channel.released(1)
            self.metrics.count_request("snapshot_request", "accepted")
            self.metrics.observe_latency_n(
                "snapshot_request", (time.perf_counter_ns() - received_ns) / 1e9, 1
            )

        task = self._loop.create_task(answer_when_written())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- a symbol's book, copied for a move ---------------------------------------------------

    def _book_export(self, request_id: int, symbol: str, channel: AnswerChannel, received_ns: int) -> None:
        engine = self.engine
        seq = engine.seq
        if symbol not in engine.instruments or not engine.symbol_halted(symbol):
            reason = (
                RejectReason.UNKNOWN_SYMBOL
                if symbol not in engine.instruments
                else RejectReason.SYMBOL_NOT_HALTED
            )
            frames = [encode(Reject(request_id, seq, 0, "", symbol, reason), LAST)]
            outcome = "rejected"
        else:
            orders = [*engine.resting_orders(symbol), *engine.waiting_stops(symbol)]
            frames = [
                encode(
                    RestingOrder(
                        request_id,
                        seq,
                        o.order_id,
                        o.client_order_id,
                        o.account,
                        o.symbol,
                        o.side,
                        o.order_type,
                        o.time_in_force,
                        o.order_flags,
                        o.leaves_quantity,
                        o.price,
                        o.stop_price,
                    )
                )
                for o in orders
            ]
            checksum = engine.book_checksums()[symbol] & CHECKSUM_MASK
            frames.append(encode(BookExported(request_id, seq, symbol, len(orders), checksum), LAST))
            outcome = "accepted"
        channel.held(1)

        def send() -> None:  # once every answer owed before it is out (its journal records safe)
            channel.send(b"".join(frames))
            channel.released(1)
            self.metrics.count_request("book_export", outcome)
            self.metrics.observe_latency_n("book_export", (time.perf_counter_ns() - received_ns) / 1e9, 1)

        self.committer.after_answers(send)

    # ---- volatility ----------------------------------------------------------------------------

    def sample_volatility(self, now: float) -> None:
        """Feed the volatility tracker each book's mid price (books with both sides only)."""
        mids: dict[str, float] = {}
        for symbol in self.engine.instruments:
            bid, _, ask, _ = self.engine.top_of_book(symbol)
            if bid > 0 and ask > 0:
                mids[symbol] = (bid + ask) / 2
        self.volatility.sample(now, mids)

    def start_volatility_sampling(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Sample every ``interval`` seconds on the loop (a few native reads per symbol) until close."""

        async def sample_forever() -> None:
            while True:
                self.sample_volatility(time.monotonic())
                await asyncio.sleep(interval)

        self._volatility_sampler = self._loop.create_task(sample_forever(), name="volatility-sampler")

    # ---- lifecycle -----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self.failed:
            return
        log.critical("matching node stopping: %r", exc)
        self.failed = True
        self.committer.failed = True  # not one answer more, and nothing left to wait for
        if self._on_fatal is not None:
            self._on_fatal(exc)

    def fail(self, exc: BaseException) -> None:
        """Stop answering at once (a fenced primary, a journal that parted from its primary's)."""
        self._fail(exc)

    async def close(self) -> None:
        """Commit what is pending and make the journal durable (the follower is stopped after the
        connections have their answers: ``stop_follower``)."""
        if self._volatility_sampler is not None:
            self._volatility_sampler.cancel()
        if not self.failed:
            await self.committer.drain()
        self.committer.close()
        try:
            self.journal.close()  # the syncer makes everything written durable, then stops
        except OSError as exc:
            self._fail(exc)

    async def stop_follower(self) -> None:
        """Let the follower deliver and write a final snapshot (within the delivery timeout), then stop."""
        if self._background:
            await asyncio.wait(self._background, timeout=self.delivery_timeout)
        await self.follower.stop(self.publishable_seq(), self.delivery_timeout + 5)

    def publishable_seq(self) -> int:
        """The last seq whose trades the follower may publish."""
        limit = self.publish_limit()
        durable = self.journal.durable_seq
        return durable if limit is None else min(durable, limit)

    def _bind_metrics(self) -> None:
        state = self.metrics.state
        engine = self.engine
        state.seq = lambda: engine.seq
        state.symbols = lambda: sorted(engine.instruments)
        state.healthy = lambda: not self.failed
        state.depth = engine.level_counts
        state.engine_requests = engine.request_counts
        state.trades = engine.trade_counts

        def fsync_buckets() -> tuple[tuple[float, ...], list[int], float]:
            syncer = self.journal.syncer
            if syncer is None:
                return ((), [], 0.0)
            _, seconds, _, _, counts = syncer.stats()
            return (SYNC_BUCKET_UPPER_SECONDS, counts, seconds)

        state.fsync_buckets = fsync_buckets

        def extras() -> dict[str, float]:
            syncer = self.journal.syncer
            syncs, sync_seconds, _, longest, _ = (
                syncer.stats() if syncer is not None else (0, 0.0, 0.0, 0.0, [])
            )
            return {
                "meridian_journal_durable_seq": self.journal.durable_seq,
                "meridian_journal_written_seq": self.journal.next_seq - 1,
                "meridian_journal_syncs": syncs,
                "meridian_journal_sync_seconds": sync_seconds,
                "meridian_journal_sync_longest_seconds": longest,
                "meridian_ack_mode_fsync": float(self.ack_mode is AckMode.FSYNC),
                "meridian_live_orders": engine.live_order_count,
                "meridian_client_order_ids": engine.client_order_ids,
                "meridian_engine_memory_bytes": engine.memory_bytes(),
                "meridian_market_volatility": self.volatility.market_volatility(),
                **self.follower.stats,
                **{name: value for gauges in self.extra_gauges for name, value in gauges().items()},
            }

        state.extra_gauges = extras
        state.details["ack_mode"] = str(self.ack_mode)
