"""The matching node's request path: engine, answers, snapshots, market data and the drop copy.

Everything here runs on the event loop thread, the engine's single writer. A state-changing
request is matched as soon as its frame is decoded; its answer then waits in the group committer
(``commit.py``) until the input's journal record is durable, and only then is it written to its
connection and its fills handed to the publishers (market data, drop copy). No answer ever
describes state the journal could lose. Heartbeats touch no state and are answered at once.

No snapshot covers a trade a publisher has not delivered: a snapshot at seq S is written only once
the drop copy has delivered every execution, and the market-data publisher every trade record, up
to S (top of book is droppable and waits for nothing). Recovery replays the journal after the
newest snapshot and re-sends the replayed fills to both, so a crash (or a sink that is down at
shutdown) never loses a trade from the drop copy or the tape; it may send one twice, and their
consumers are idempotent (execution id; tape item key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from meridian.domain import RejectReason
from meridian.protocol import (
    Ack,
    Admin,
    AdminAck,
    Cancel,
    CancelAck,
    Fill,
    Flag,
    Heartbeat,
    Message,
    NewOrder,
    ProtocolRejectCode,
    Reject,
    Replace,
    Snapshot,
    SnapshotRequest,
    encode,
)
from meridian_hotpath.commit import DEFAULT_THREAD_ABOVE, AnswerChannel, Batch, GroupCommitter
from meridian_hotpath.dropcopy import execution_records
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter, StateChange
from meridian_hotpath.marketdata import top_of_book_record, trade_record
from meridian_hotpath.metrics import NodeMetrics
from meridian_hotpath.publisher import StreamPublisher, StreamRecord
from meridian_hotpath.recovery import engine_checksum
from meridian_hotpath.runtime_tuning import GcPacing
from meridian_hotpath.snapshot import CHECKSUM_MASK, SnapshotStore
from meridian_hotpath.volatility import DEFAULT_INTERVAL, VolatilityTracker

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_EVERY = 100_000
DEFAULT_DELIVERY_TIMEOUT = 5.0  # seconds the final snapshot waits for the publishers at shutdown
TYPE_LABELS: dict[type, str] = {NewOrder: "new_order", Cancel: "cancel", Replace: "replace", Admin: "admin"}
# Plain ints: IntFlag arithmetic runs Python-level __or__/__and__, a measurable share of a request.
LAST = int(Flag.LAST)
DUPLICATE = int(Flag.DUPLICATE)
_OUTCOMES: dict[type, str] = {
    Ack: "accepted",
    AdminAck: "accepted",
    Reject: "rejected",
    CancelAck: "cancelled",
}

__all__ = ["AnswerChannel", "MatchingNode", "encode_answer"]


class EngineFailedError(Exception):
    """The engine raised after changing its state: the node stops rather than run on doubtful state."""


class SnapshotSkippedError(Exception):
    """A snapshot was given up at shutdown: a publisher had not delivered every trade it covers."""


def encode_answer(outputs: list[Message], flags: int) -> bytes:
    """All frames of one answer; ``flags`` go on every frame, LAST on the final one."""
    if len(outputs) == 1:
        return encode(outputs[0], flags | LAST)
    last = len(outputs) - 1
    return b"".join(
        encode(message, flags | LAST if i == last else flags) for i, message in enumerate(outputs)
    )


def outcome_of(outputs: list[Message], flags: int) -> str:
    if flags & DUPLICATE:
        return "duplicate"
    return _OUTCOMES.get(type(outputs[0]), "other")


class MatchingNode:
    def __init__(
        self,
        engine: MatchingEngine,
        journal: JournalWriter,
        snapshots: SnapshotStore,
        metrics: NodeMetrics,
        publisher: StreamPublisher | None = None,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        on_fatal: Callable[[BaseException], None] | None = None,
        gc_pacing: GcPacing | None = None,
        journal_thread_above: float = DEFAULT_THREAD_ABOVE,
        drop_copy: StreamPublisher | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        last_snapshot_seq: int | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.snapshots = snapshots
        self.metrics = metrics
        self.publisher = publisher  # market data
        self.drop_copy = drop_copy  # executions
        # The publishers of kept records (trades, executions): a snapshot waits for every one of them.
        self._gating = [p for p in (publisher, drop_copy) if p is not None]
        self.delivery_timeout = delivery_timeout
        self._stage_fills = publisher is not None or drop_copy is not None
        self.snapshot_every = snapshot_every
        self._on_fatal = on_fatal
        self._gc_pacing = gc_pacing
        self._loop = asyncio.get_running_loop()
        self.committer = GroupCommitter(journal, self._released, self._fail, journal_thread_above)
        # The seq of the newest snapshot on disk (recovery's), so that inputs replayed since count.
        self._last_snapshot_seq = engine.seq if last_snapshot_seq is None else last_snapshot_seq
        self._snapshot_in_flight: asyncio.Task[None] | None = None
        self._snapshot_writer = ThreadPoolExecutor(1, thread_name_prefix="snapshot-writer")
        self._tops = {symbol: engine.top_of_book(symbol) for symbol in engine.instruments}
        self._background: set[asyncio.Task[None]] = set()
        self._stop_waiting_for_delivery: asyncio.Future[None] = self._loop.create_future()
        self.volatility = VolatilityTracker()
        self._volatility_sampler: asyncio.Task[None] | None = None
        self.failed = False
        self._bind_metrics()

    # ---- requests ------------------------------------------------------------------------------

    def handle(self, request: Message, frame: bytes, channel: AnswerChannel, received_ns: int) -> None:
        """Process one decoded request frame from ``channel``."""
        if self.failed:
            return
        if isinstance(request, Heartbeat):
            channel.send(encode(request, LAST))
            self.metrics.count_request("heartbeat", "accepted")
            self.metrics.observe_latency("heartbeat", (time.perf_counter_ns() - received_ns) / 1e9)
        elif isinstance(request, SnapshotRequest):
            self._snapshot_requested(request, channel, received_ns)
        else:
            self._process(request, frame, channel, received_ns)  # type: ignore[arg-type]

    def after_answers(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every answer owed so far has been written (e.g. before a close)."""
        self.committer.after_answers(action)

    def _process(self, request: StateChange, frame: bytes, channel: AnswerChannel, received_ns: int) -> None:
        engine = self.engine
        seq_before = engine.seq
        try:
            outputs = engine.process(request)
        except Exception as exc:
            if engine.seq == seq_before:
                # Nothing changed (the engine validates before it mutates): refuse this one frame.
                log.exception("engine refused request %r", request)
                channel.reject_and_close(request.request_id, ProtocolRejectCode.BAD_FIELD)
                return
            self._fail(EngineFailedError(f"engine raised at seq {engine.seq}: {exc!r}"))
            return
        flags = engine.last_flags
        label = TYPE_LABELS[type(request)]
        self.committer.add(engine.seq, frame, channel, encode_answer(outputs, flags), label, received_ns)
        self.metrics.count_request(label, outcome_of(outputs, flags))
        if self._stage_fills:
            batch = self.committer.open
            fills = batch.fills
            for message in outputs:
                if type(message) is Fill:
                    fills.append(message)  # the records are built once the batch is durable
            if self.publisher is not None:
                self._stage_top_of_book(request, batch.market_data)

    def _stage_top_of_book(self, request: StateChange, staged: list[StreamRecord]) -> None:
        now = time.time_ns()
        symbols = (
            self.engine.instruments
            if isinstance(request, Admin) and not request.symbol
            else (request.symbol,)
        )
        for symbol in symbols:
            if symbol not in self._tops:
                continue
            top = self.engine.top_of_book(symbol)
            if top != self._tops[symbol]:
                self._tops[symbol] = top
                staged.append(top_of_book_record(symbol, self.engine.seq, top, now))

    def _released(self, batch: Batch, fsync_seconds: float) -> None:
        """A batch is durable and its answers are out: bookkeeping, market data, maintenance."""
        now = time.perf_counter_ns()
        observe = self.metrics.observe_latency
        for label, received_ns in batch.received:
            observe(label, (now - received_ns) / 1e9)
        self.metrics.observe_commit(fsync_seconds, batch.records)
        if batch.fills:
            self._publish_fills(batch.fills)
        if batch.market_data:
            assert self.publisher is not None
            self.publisher.publish(batch.market_data)
        durable = self.journal.durable_seq
        if durable - self._last_snapshot_seq >= self.snapshot_every and self._snapshot_in_flight is None:
            self._start_snapshot()
        if self._gc_pacing is not None:
            self._gc_pacing.after_commit(batch.records)  # the answers already left: the pause delays no one

    def _publish_fills(self, fills: list[Fill]) -> None:
        now = time.time_ns()
        if self.publisher is not None:
            self.publisher.publish([trade_record(fill, now) for fill in fills])
        if self.drop_copy is not None:
            self.drop_copy.publish(execution_records(fills, self.engine.instruments, now))
        count_trade = self.metrics.count_trade
        for fill in fills:
            count_trade(fill.symbol)

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
        """Sample every ``interval`` seconds on the loop (a few dict reads per symbol) until close."""

        async def sample_forever() -> None:
            while True:
                self.sample_volatility(time.monotonic())
                await asyncio.sleep(interval)

        self._volatility_sampler = self._loop.create_task(sample_forever(), name="volatility-sampler")

    # ---- snapshots -----------------------------------------------------------------------------

    def _start_snapshot(self) -> asyncio.Task[None]:
        """Capture the state now (on the loop); write it once the journal covers it."""
        seq, checksum, payload = self.engine.seq, engine_checksum(self.engine), self.engine.snapshot()
        durable = self.committer.durable(seq)

        async def write() -> None:
            await durable  # a snapshot never covers inputs the journal could still lose
            if self._gating:
                await self._delivered_through(seq)  # nor trades a publisher could still lose
            try:
                await self._loop.run_in_executor(
                    self._snapshot_writer, self.snapshots.write, seq, checksum, payload
                )
            except Exception:
                log.exception("snapshot at seq %d failed", seq)
                self.metrics.snapshots.labels("failed").inc()
                raise
            self._last_snapshot_seq = max(self._last_snapshot_seq, seq)
            self.metrics.snapshots.labels("written").inc()

        task = self._loop.create_task(write())
        self._snapshot_in_flight = task

        def finished(done: asyncio.Task[None]) -> None:
            if self._snapshot_in_flight is done:
                self._snapshot_in_flight = None
            if not done.cancelled():
                done.exception()  # retrieved: the failure is logged and counted above

        task.add_done_callback(finished)
        return task

    async def _delivered_through(self, seq: int) -> None:
        """Until every gating publisher (drop copy, market data) has delivered its kept records up to
        ``seq``; at shutdown, only until the delivery timeout: then ``SnapshotSkippedError`` (the next
        start re-sends them)."""
        waits = [(publisher, publisher.delivered_through(seq)) for publisher in self._gating]
        stop = self._stop_waiting_for_delivery
        for _, delivered in waits:
            if not delivered.done() and not stop.done():
                await asyncio.wait([delivered, stop], return_when=asyncio.FIRST_COMPLETED)
        behind = [(publisher, delivered) for publisher, delivered in waits if not delivered.done()]
        if not behind:
            return
        for _, delivered in waits:
            delivered.cancel()  # abandons only the waits
        lagging = ", ".join(f"{p.name} from seq {p.oldest_undelivered_seq}" for p, _ in behind)
        log.warning(
            "snapshot at seq %d skipped: undelivered trades (%s); the next start replays the journal"
            " after the last snapshot and re-sends them",
            seq,
            lagging,
        )
        self.metrics.snapshots.labels("skipped").inc()
        raise SnapshotSkippedError(f"seq {seq}: undelivered trades ({lagging})")

    def _snapshot_requested(self, request: SnapshotRequest, channel: AnswerChannel, received_ns: int) -> None:
        symbol = request.symbol
        if symbol and symbol not in self.engine.instruments:
            reject = Reject(request.request_id, self.engine.seq, 0, "", symbol, RejectReason.UNKNOWN_SYMBOL)
            channel.send(encode(reject, LAST))
            self.metrics.count_request("snapshot_request", "rejected")
            return
        written = self._start_snapshot()
        checksum = self.engine.book_checksums()[symbol] if symbol else engine_checksum(self.engine)
        answer = Snapshot(request.request_id, self.engine.seq, checksum & CHECKSUM_MASK)

        async def answer_when_written() -> None:
            try:
                await asyncio.shield(written)
            except Exception:
                channel.reject_and_close(request.request_id, ProtocolRejectCode.MALFORMED)
                return
            channel.send(encode(answer, LAST))
            self.metrics.count_request("snapshot_request", "accepted")
            self.metrics.observe_latency("snapshot_request", (time.perf_counter_ns() - received_ns) / 1e9)

        task = self._loop.create_task(answer_when_written())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- lifecycle -----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        log.critical("matching node stopping: %r", exc)
        self.failed = True
        if self._on_fatal is not None:
            self._on_fatal(exc)

    async def close(self) -> None:
        """Commit what is pending, write a final snapshot, close the journal.

        The final snapshot waits for the publishers (drop copy, market data) for ``delivery_timeout``
        at most; a sink still down by then costs the snapshot (skipped and logged), never a trade.
        """
        if self._volatility_sampler is not None:
            self._volatility_sampler.cancel()
        give_up = self._loop.call_later(self.delivery_timeout, self._give_up_waiting_for_delivery)
        if not self.failed:
            await self.committer.drain()
            if self._snapshot_in_flight is not None:
                await asyncio.wait([self._snapshot_in_flight])
            if not self.failed and self.engine.seq > self._last_snapshot_seq:
                await asyncio.wait([self._start_snapshot()])
        give_up.cancel()
        self._give_up_waiting_for_delivery()  # snapshot requests still waiting answer now
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        self.committer.close()
        self._snapshot_writer.shutdown(wait=True)
        if not self.failed:
            self.journal.close()

    def _give_up_waiting_for_delivery(self) -> None:
        if not self._stop_waiting_for_delivery.done():
            self._stop_waiting_for_delivery.set_result(None)

    def _bind_metrics(self) -> None:
        state = self.metrics.state
        engine = self.engine
        state.seq = lambda: engine.seq
        state.symbols = lambda: sorted(engine.instruments)
        state.healthy = lambda: not self.failed

        def depth() -> dict[str, tuple[int, int]]:
            levels = {}
            for symbol in engine.instruments:
                bids, asks = engine.depth(symbol, 1_000_000)
                levels[symbol] = (len(bids), len(asks))
            return levels

        def extras() -> dict[str, float]:
            values: dict[str, float] = {
                "meridian_journal_durable_seq": self.journal.durable_seq,
                "meridian_journal_fsync_estimate_seconds": self.committer.fsync_estimate,
                "meridian_journal_threaded": float(self.committer.threaded),
                "meridian_market_volatility": self.volatility.market_volatility(),
            }
            if self.publisher is not None:
                trades, tops = self.publisher.backlog
                stats = self.publisher.stats
                values |= {
                    "meridian_marketdata_trades_backlog": trades,
                    "meridian_marketdata_top_of_book_backlog": tops,
                    "meridian_marketdata_published": stats.published,
                    "meridian_marketdata_top_of_book_dropped": stats.dropped,
                    "meridian_marketdata_trade_failures": stats.failures,
                }
            if self.drop_copy is not None:
                executions, _ = self.drop_copy.backlog
                stats = self.drop_copy.stats
                values |= {
                    "meridian_dropcopy_backlog": executions,
                    "meridian_dropcopy_published": stats.published,
                    "meridian_dropcopy_failures": stats.failures,
                }
            return values

        state.depth = depth
        state.extra_gauges = extras
