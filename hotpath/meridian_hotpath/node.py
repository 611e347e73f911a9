"""The matching node's request path: engine, group commit, answers, snapshots and market data.

Everything here runs on the event loop thread, the engine's single writer. A state-changing
request is matched as soon as its frame is decoded; its journal record and its answer wait in the
current batch. The batch is committed once per loop iteration (``call_soon`` after the reads of
that iteration): one write and one fdatasync for every input that arrived together, and only then
are the answers written to their connections and the market data handed to the publisher. No
answer ever describes state the journal could lose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from meridian.domain import RejectReason
from meridian.protocol import (
    Ack,
    Admin,
    AdminAck,
    CancelAck,
    Fill,
    Flag,
    Heartbeat,
    Message,
    ProtocolRejectCode,
    Reject,
    Snapshot,
    SnapshotRequest,
    encode,
)
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter, StateChange
from meridian_hotpath.marketdata import (
    MarketDataPublisher,
    MarketDataRecord,
    top_of_book_record,
    trade_record,
)
from meridian_hotpath.metrics import NodeMetrics
from meridian_hotpath.recovery import engine_checksum
from meridian_hotpath.snapshot import CHECKSUM_MASK, SnapshotStore

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_EVERY = 100_000
TYPE_LABELS = {
    "NewOrder": "new_order",
    "Cancel": "cancel",
    "Replace": "replace",
    "Admin": "admin",
    "Heartbeat": "heartbeat",
    "SnapshotRequest": "snapshot_request",
}


class AnswerChannel(Protocol):
    """Where a request's answer goes: a client connection."""

    def send(self, data: bytes) -> None: ...

    def reject_and_close(self, request_id: int, code: ProtocolRejectCode) -> None: ...


class EngineFailedError(Exception):
    """The engine raised after changing its state: the node stops rather than run on doubtful state."""


def encode_answer(outputs: list[Message], flags: int) -> bytes:
    """All frames of one answer; ``flags`` go on every frame, LAST on the final one."""
    last = len(outputs) - 1
    return b"".join(
        encode(message, flags | Flag.LAST if i == last else flags) for i, message in enumerate(outputs)
    )


def outcome_of(outputs: list[Message], flags: int) -> str:
    first = outputs[0]
    if flags & Flag.DUPLICATE:
        return "duplicate"
    if isinstance(first, Reject):
        return "rejected"
    if isinstance(first, Ack | AdminAck):
        return "accepted"
    if isinstance(first, CancelAck):
        return "cancelled"
    return "other"


class MatchingNode:
    def __init__(
        self,
        engine: MatchingEngine,
        journal: JournalWriter,
        snapshots: SnapshotStore,
        metrics: NodeMetrics,
        publisher: MarketDataPublisher | None = None,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.snapshots = snapshots
        self.metrics = metrics
        self.publisher = publisher
        self.snapshot_every = snapshot_every
        self._on_fatal = on_fatal
        self._loop = asyncio.get_running_loop()
        self._answers: dict[AnswerChannel, list[bytes]] = {}
        self._received: list[tuple[str, int]] = []  # (type label, received ns) per answer in the batch
        self._market_data: list[MarketDataRecord] = []
        self._commit_scheduled = False
        self._last_snapshot_seq = engine.seq
        self._snapshot_in_flight: asyncio.Future[object] | None = None
        self._snapshot_writer = ThreadPoolExecutor(1, thread_name_prefix="snapshot-writer")
        self._tops = {symbol: engine.top_of_book(symbol) for symbol in engine.instruments}
        self._background: set[asyncio.Task[None]] = set()
        self.failed = False
        self._bind_metrics()

    # ---- requests ------------------------------------------------------------------------------

    def handle(self, request: Message, frame: bytes, channel: AnswerChannel, received_ns: int) -> None:
        """Process one decoded request frame from ``channel``."""
        if self.failed:
            return
        if isinstance(request, Heartbeat):
            channel.send(encode(request, Flag.LAST))
            self.metrics.requests.labels("heartbeat", "accepted").inc()
            self.metrics.observe_latency("heartbeat", (time.perf_counter_ns() - received_ns) / 1e9)
        elif isinstance(request, SnapshotRequest):
            self._snapshot_requested(request, channel, received_ns)
        else:
            self._process(request, frame, channel, received_ns)  # type: ignore[arg-type]

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
        self.journal.append(engine.seq, frame)
        answer = encode_answer(outputs, flags)
        pending = self._answers.get(channel)
        if pending is None:
            self._answers[channel] = [answer]
        else:
            pending.append(answer)
        label = TYPE_LABELS[type(request).__name__]
        self._received.append((label, received_ns))
        self.metrics.requests.labels(label, outcome_of(outputs, flags)).inc()
        if self.publisher is not None:
            self._stage_market_data(request, outputs)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._loop.call_soon(self.commit)

    def _stage_market_data(self, request: StateChange, outputs: list[Message]) -> None:
        now = time.time_ns()
        for message in outputs:
            if isinstance(message, Fill):
                self._market_data.append(trade_record(message, now))
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
                self._market_data.append(top_of_book_record(symbol, self.engine.seq, top, now))

    # ---- group commit --------------------------------------------------------------------------

    def commit(self) -> None:
        """Make the batch durable, then release its answers and market data."""
        self._commit_scheduled = False
        if not self.journal.pending:
            return
        try:
            self.journal.commit()
        except OSError as exc:
            # The batch's fate on disk is unknown; answering would risk acknowledging lost orders.
            self._fail(exc)
            return
        answers, self._answers = self._answers, {}
        for channel, frames in answers.items():
            channel.send(frames[0] if len(frames) == 1 else b"".join(frames))
        now = time.perf_counter_ns()
        for label, received_ns in self._received:
            self.metrics.observe_latency(label, (now - received_ns) / 1e9)
        self._received.clear()
        if self._market_data:
            assert self.publisher is not None
            self.publisher.publish(self._market_data)
            for record in self._market_data:
                if record.is_trade:
                    self.metrics.trades.labels(record.symbol).inc()
            self._market_data = []
        if (
            self.engine.seq - self._last_snapshot_seq >= self.snapshot_every
            and self._snapshot_in_flight is None
        ):
            self._start_snapshot()

    # ---- snapshots -----------------------------------------------------------------------------

    def _start_snapshot(self) -> asyncio.Future[object]:
        """Capture the state now (on the loop) and write it from the snapshot thread."""
        self.commit()  # a snapshot never covers inputs the journal could still lose
        seq, checksum, payload = self.engine.seq, engine_checksum(self.engine), self.engine.snapshot()
        future: asyncio.Future[object] = self._loop.run_in_executor(
            self._snapshot_writer, self.snapshots.write, seq, checksum, payload
        )
        self._snapshot_in_flight = future

        def done(finished: asyncio.Future[object]) -> None:
            if self._snapshot_in_flight is finished:
                self._snapshot_in_flight = None
            if finished.cancelled() or finished.exception() is not None:
                log.error(
                    "snapshot at seq %d failed: %r",
                    seq,
                    None if finished.cancelled() else finished.exception(),
                )
                self.metrics.snapshots.labels("failed").inc()
            else:
                self._last_snapshot_seq = max(self._last_snapshot_seq, seq)
                self.metrics.snapshots.labels("written").inc()

        future.add_done_callback(done)
        return future

    def _snapshot_requested(self, request: SnapshotRequest, channel: AnswerChannel, received_ns: int) -> None:
        symbol = request.symbol
        if symbol and symbol not in self.engine.instruments:
            reject = Reject(request.request_id, self.engine.seq, 0, "", symbol, RejectReason.UNKNOWN_SYMBOL)
            channel.send(encode(reject, Flag.LAST))
            self.metrics.requests.labels("snapshot_request", "rejected").inc()
            return
        written = self._start_snapshot()
        seq = self.engine.seq
        checksum = self.engine.book_checksums()[symbol] if symbol else engine_checksum(self.engine)
        answer = Snapshot(request.request_id, seq, checksum & CHECKSUM_MASK)

        async def answer_when_durable() -> None:
            try:
                await written
            except Exception:
                channel.reject_and_close(request.request_id, ProtocolRejectCode.MALFORMED)
                return
            channel.send(encode(answer, Flag.LAST))
            self.metrics.requests.labels("snapshot_request", "accepted").inc()
            self.metrics.observe_latency("snapshot_request", (time.perf_counter_ns() - received_ns) / 1e9)

        task = self._loop.create_task(answer_when_durable())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- lifecycle -----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        log.critical("matching node stopping: %r", exc)
        self.failed = True
        self._answers.clear()
        self._received.clear()
        self._market_data = []
        if self._on_fatal is not None:
            self._on_fatal(exc)

    async def close(self) -> None:
        """Commit what is pending, write a final snapshot, close the journal."""
        if not self.failed:
            self.commit()
            if self._snapshot_in_flight is not None:
                await asyncio.wait([self._snapshot_in_flight])
            if self.engine.seq > self._last_snapshot_seq:
                await asyncio.wait([self._start_snapshot()])
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        self._snapshot_writer.shutdown(wait=True)
        self.journal.close()

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
            values: dict[str, float] = {"meridian_journal_durable_seq": self.journal.durable_seq}
            if self.publisher is not None:
                trades, tops = self.publisher.backlog
                stats = self.publisher.stats
                values |= {
                    "meridian_marketdata_trades_backlog": trades,
                    "meridian_marketdata_top_of_book_backlog": tops,
                    "meridian_marketdata_published": stats.published,
                    "meridian_marketdata_top_of_book_dropped": stats.top_of_book_dropped,
                    "meridian_marketdata_trade_failures": stats.trade_failures,
                }
            return values

        state.depth = depth
        state.extra_gauges = extras
