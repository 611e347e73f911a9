"""The journal's follower: market data, the drop copy and snapshots, out of the matching process.

The matching node only matches, journals and answers. Everything else that derives from the
sequenced input runs here, as another consumer of the same journal with its own cursor (as LMAX's
journaller, replicator and publishers are): the follower tails the journal up to the durable seq,
applies each record to its own copy of the engine (the engine is deterministic, so it reaches the
node's state and answers, fills included), and

* publishes every trade to the market-data stream and every execution to the drop copy (kept
  records: retried until delivered), and the depth of each symbol whose book changed (its best
  ``depth_levels`` levels a side, numbered per symbol: ``marketdata.book_record``; droppable);
* writes a snapshot every ``snapshot_every`` inputs, once both publishers delivered every trade up to
  it: no snapshot covers a trade that a crash could lose;
* answers the node's snapshot requests (a client's SNAPSHOT_REQUEST) with the seq and checksums of
  the snapshot it wrote for them.

On start it recovers from the newest snapshot and re-publishes the trades of the journal after it
(``resent``): the previous follower may have died before delivering them (it may also have
delivered them: the consumers are idempotent). It stops when the node asks (after a final snapshot,
if delivery allows) or when the node's control connection closes (the node died): then it delivers
what the journal made durable and exits.

It runs as its own process in production (``python -m meridian_hotpath follow``, started by the
node: its GIL, its boto3 threads and its snapshot work never touch the matching process) and as a
thread in tests (``FollowerThread``), with the same code and the same wires: a control socket, a
wake-up pipe the journal's syncer writes to after every fdatasync, and the shared durable seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import mmap
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meridian.domain import Instrument
from meridian.protocol import FRAME_SIZES, Fill, MessageType, decode
from meridian_hotpath.dropcopy import execution_records
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.identity import data_dir_node_number
from meridian_hotpath.journal import SEGMENT_SUFFIX, segment_first_seq, segment_name, segment_paths
from meridian_hotpath.marketdata import DEFAULT_DEPTH_LEVELS, Level, book_record, trade_record
from meridian_hotpath.publisher import StreamPublisher, StreamRecord, StreamSink
from meridian_hotpath.recovery import journal_dir, recover, snapshot_dir
from meridian_hotpath.snapshot import CHECKSUM_MASK, SnapshotStore

log = logging.getLogger(__name__)

DURABLE_FILE = "durable.seq"  # 8 bytes: the journal's durable seq, written by the node's syncer
LOCK_FILE = "follower.lock"
STATS_INTERVAL = 1.0
_FILL = int(MessageType.FILL)
_FILL_SIZE = FRAME_SIZES[_FILL]


class FollowerError(Exception):
    """The journal cannot be followed (damage, a gap): the follower stops."""


class DurableSeq:
    """How far the follower may go, shared through a one-page file mapped by the node and the follower:
    the journal's durable seq (bytes 0-8, the syncer's), and in a replicated shard's primary a limit
    (bytes 8-16, the node's loop): the last seq its standby holds, by the ack mode.

    A primary's follower publishes the trades of what is durable on its own disk. Without the limit
    it could publish a trade its standby never received; the standby, taking over, would then never
    have made that trade (a trade in the drop copy and the ledger that the shard's history does not
    hold), and would give its trade id to another one. With it, what is published is what survives
    any takeover, as with answers (``commit.Committer.safe_seq``).
    """

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / DURABLE_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            if os.fstat(fd).st_size < mmap.PAGESIZE:
                os.ftruncate(fd, mmap.PAGESIZE)
            self.map = mmap.mmap(fd, mmap.PAGESIZE)
        finally:
            os.close(fd)
        self.view = memoryview(self.map)[:8]
        self._limit = memoryview(self.map)[8:16]  # the limit + 1; 0: none

    def get(self) -> int:
        """How far the follower may apply and publish: the durable seq, within the limit if any."""
        durable = int.from_bytes(self.view, "little")
        limit = int.from_bytes(self._limit, "little")
        return durable if not limit else min(durable, limit - 1)

    def set(self, seq: int) -> None:
        self.view[:] = seq.to_bytes(8, "little")

    @property
    def limit(self) -> int | None:
        stored = int.from_bytes(self._limit, "little")
        return stored - 1 if stored else None

    def set_limit(self, seq: int | None) -> None:
        """Up to ``seq`` (None: no limit, a node that is not a replicated shard's primary)."""
        self._limit[:] = (0 if seq is None else seq + 1).to_bytes(8, "little")

    def close(self) -> None:
        self.view.release()
        self._limit.release()
        with contextlib.suppress(BufferError):
            self.map.close()


def fills_in(answers: bytes) -> list[Fill]:
    """The FILL frames among encoded answers, decoded."""
    fills: list[Fill] = []
    offset, end = 0, len(answers)
    while offset < end:
        size = int.from_bytes(answers[offset : offset + 4], "little") + 4
        if answers[offset + 5] == _FILL and size == _FILL_SIZE:
            message, _, _ = decode(answers, offset)
            assert isinstance(message, Fill)
            fills.append(message)
        offset += size
    return fills


class JournalTail:
    """Reads the records after ``engine.seq`` from the journal's segments as they grow."""

    def __init__(self, directory: Path, engine: MatchingEngine) -> None:
        self.directory = directory
        self.engine = engine
        self._fd = -1
        self._offset = 0
        self._first = 0  # first seq of the open segment

    def apply_through(self, durable: int) -> bytes:
        """Apply every record up to ``durable`` (all written, all intact); return their answers."""
        engine = self.engine
        answers: list[bytes] = []
        while engine.seq < durable:
            if self._fd < 0 and not self._open(engine.seq + 1):
                raise FollowerError(f"no journal segment holds seq {engine.seq + 1} (durable {durable})")
            size = os.fstat(self._fd).st_size
            data = os.pread(self._fd, size - self._offset, self._offset) if size > self._offset else b""
            end, _, defect, applied, last = engine.replay(data, 0, -1, durable, True, self._next_in_segment())
            if applied:
                answers.append(applied)
            self._offset += end
            if engine.seq >= durable:
                break
            if defect is not None and not defect.startswith("truncated"):
                raise FollowerError(f"journal record after seq {last} is unreadable: {defect}")
            if end == len(data) and self._next_segment_exists():
                self._close()
                continue
            # Written but not yet in this file's view (the page cache is shared: rare): try again.
            break
        return b"".join(answers)

    def _next_in_segment(self) -> int:
        return self.engine.seq + 1 if self._offset else self._first

    def _open(self, seq: int) -> bool:
        """Open the segment holding ``seq``; the native replay checks and skips the records before it."""
        paths = [p for p in segment_paths(self.directory) if segment_first_seq(p) <= seq]
        if not paths:
            return False
        self._fd = os.open(paths[-1], os.O_RDONLY)
        self._first = segment_first_seq(paths[-1])
        self._offset = 0
        return True

    def _next_segment_exists(self) -> bool:
        return (self.directory / segment_name(self.engine.seq + 1)).exists()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._offset = 0

    def close(self) -> None:
        self._close()


SnapshotDone = tuple[int, int, dict[str, int]]  # seq, engine checksum, book checksums


@dataclass(slots=True)
class FollowerConfig:
    data_dir: Path
    instruments: tuple[Instrument, ...]
    snapshot_every: int
    delivery_timeout: float
    start_seq: int = 0  # the node's seq when it started: what the journal held before is re-sent
    depth_levels: int = DEFAULT_DEPTH_LEVELS  # price levels a side in each book update
    # A standby's follower: it publishes nothing, and writes snapshots only where its primary's
    # follower did (``verify``: every trade up to there was delivered), never of its own accord.
    standby: bool = False


@dataclass(slots=True)
class FollowerCounters:
    snapshots_written: int = 0
    snapshots_failed: int = 0
    snapshots_skipped: int = 0
    resent: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class Follower:
    """One follower; ``run`` until stopped. See the module docstring."""

    def __init__(
        self,
        config: FollowerConfig,
        control: socket.socket,
        wake_fd: int,
        market_data: StreamSink | None,
        executions: StreamSink | None,
    ) -> None:
        self.config = config
        self.control = control
        self.wake_fd = wake_fd
        self._market_data_sink = market_data
        self._executions_sink = executions
        self.counters = FollowerCounters()
        self.publisher: StreamPublisher | None = None
        self.drop_copy: StreamPublisher | None = None
        self._last_snapshot_seq = 0  # the newest snapshot written
        self._last_capture_seq = 0  # the newest snapshot captured (written once delivered)
        self._snapshot_task: asyncio.Task[SnapshotDone | None] | None = None
        self._snapshot_task_seq = 0
        self._pending_requests: list[tuple[int, int]] = []  # (request id, min seq)
        self._stop_seq: int | None = None
        self._node_gone = False
        self._verify: list[tuple[int, int]] = []  # (seq, the primary's checksum there), standby only
        self.checksum_matches = 0
        self.checksum_mismatches = 0
        self._wakeup = asyncio.Event()

    def node_gone(self) -> None:
        """Deliver what is durable, then stop (the node's connection closed, or SIGTERM)."""
        self._node_gone = True
        self._wakeup.set()

    async def run(self, handle_signals: bool = False) -> int:
        """Follow until the node says stop or goes away; return the exit code."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.node_gone)
        config = self.config
        lock = _take_lock(config.data_dir)
        durable = DurableSeq(config.data_dir)
        store = SnapshotStore(snapshot_dir(config.data_dir))
        for stray in store.remove_stray_temporaries():
            log.info("removed unfinished snapshot %s", stray.name)
        replayed: list[bytes] = []
        # Up to the node's start: the journal a previous run left, whose trades may be undelivered.
        engine, report = recover(
            config.data_dir, config.instruments, to_seq=config.start_seq, on_answers=replayed.append
        )
        self.engine = engine
        self._last_snapshot_seq = self._last_capture_seq = report.snapshot_seq or 0
        levels = config.depth_levels
        self._node_number = data_dir_node_number(config.data_dir)  # whose book a record is
        self._books = {
            symbol: (engine.depth(symbol, levels), engine.symbol_halted(symbol))
            for symbol in engine.instruments
        }
        self._book_seqs = dict.fromkeys(engine.instruments, 0)
        self._start_publishers(fills_in(b"".join(replayed)))
        tail = JournalTail(journal_dir(config.data_dir), engine)
        loop.add_reader(self.wake_fd, self._woken)
        reader, writer = await asyncio.open_connection(sock=self.control)
        control_task = loop.create_task(self._read_control(reader))
        stats_task = loop.create_task(self._send_stats(writer))
        self._writer = writer
        log.info("following the journal from seq %d (snapshot %s)", engine.seq, report.snapshot_seq)
        try:
            while True:
                self._apply(tail, self._apply_target(durable.get()))
                while self._verify_here():  # checked and snapshotted at a seq: apply on past it
                    self._apply(tail, self._apply_target(durable.get()))
                self._serve_snapshot_requests()
                if self._stop_seq is not None and engine.seq >= self._stop_seq:
                    break
                if self._node_gone:
                    self._apply(tail, durable.get())
                    break
                periodic = not config.standby and engine.seq - self._last_capture_seq >= config.snapshot_every
                if periodic and not self._snapshot_busy():
                    self._start_snapshot()
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._finish()
        finally:
            stats_task.cancel()
            control_task.cancel()
            loop.remove_reader(self.wake_fd)
            tail.close()
            durable.close()
            with contextlib.suppress(OSError):
                writer.close()
            lock.close()
        return 0

    # ---- input ---------------------------------------------------------------------------------

    def _woken(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.wake_fd, 4096)
        self._wakeup.set()

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                self.node_gone()
                return
            message = json.loads(line)
            if message["op"] == "snapshot":
                self._pending_requests.append((int(message["id"]), int(message["seq"])))
            elif message["op"] == "stop":
                self._stop_seq = int(message["seq"])
            elif message["op"] == "verify":
                self._verify.append((int(message["seq"]), int(message["checksum"])))
                self._verify.sort()
            self._wakeup.set()

    def _apply_target(self, durable: int) -> int:
        """How far to apply now: the durable seq, or the next seq a standby must check and snapshot."""
        if self._verify and self._verify[0][0] > self.engine.seq:
            return min(durable, self._verify[0][0])
        return durable

    def _verify_here(self) -> bool:
        """At a seq the primary snapshotted: compare checksums, and snapshot here (delivered).
        Whether a check was done."""
        checked = False
        while self._verify and self._verify[0][0] <= self.engine.seq:
            seq, theirs = self._verify.pop(0)
            if seq != self.engine.seq:
                continue  # passed already (a restart): the next one will do
            ours = self.engine.checksum() & CHECKSUM_MASK
            if ours == theirs:
                self.checksum_matches += 1
            else:
                self.checksum_mismatches += 1
                log.error(
                    "standby state at seq %d differs from its primary's (%016x != %016x)", seq, ours, theirs
                )
            self._start_snapshot()
            checked = True
        return checked

    def _apply(self, tail: JournalTail, durable: int) -> None:
        if durable <= self.engine.seq:
            return
        answers = tail.apply_through(durable)
        now = time.time_ns()
        fills = fills_in(answers) if answers else []
        if fills:
            if self.publisher is not None:
                self.publisher.publish([trade_record(fill, now) for fill in fills])
            if self.drop_copy is not None:
                self.drop_copy.publish(execution_records(fills, self.engine.instruments, now))
        if self.publisher is not None:
            self._publish_books(now)

    def _publish_books(self, now: int) -> None:
        """One book update for each symbol whose top ``depth_levels`` levels or halt changed (a
        symbol moving to another shard is handed over through its halt: ``meridian.symbol_move``)."""
        assert self.publisher is not None
        levels = self.config.depth_levels
        engine = self.engine
        changed: list[StreamRecord] = []
        for symbol, before in self._books.items():
            state: tuple[tuple[list[Level], list[Level]], bool] = (
                engine.depth(symbol, levels),
                engine.symbol_halted(symbol),
            )
            if state != before:
                self._books[symbol] = state
                book_seq = self._book_seqs[symbol] = self._book_seqs[symbol] + 1
                changed.append(
                    book_record(
                        symbol, engine.seq, book_seq, state[0], levels, now, self._node_number, state[1]
                    )
                )
        if changed:
            self.publisher.publish(changed)

    def _start_publishers(self, replayed: list[Fill]) -> None:
        now = time.time_ns()
        self.counters.resent = len(replayed)
        if self._market_data_sink is not None:
            self.publisher = StreamPublisher(self._market_data_sink, "market data")
            self.publisher.publish([trade_record(fill, now, resent=True) for fill in replayed])
            self.publisher.start()
        if self._executions_sink is not None:
            self.drop_copy = StreamPublisher(self._executions_sink, "drop copy")
            self.drop_copy.publish(execution_records(replayed, self.engine.instruments, now))
            self.drop_copy.start()
        if replayed:
            log.info("re-sending the %d trades replayed from the journal", len(replayed))

    # ---- snapshots -----------------------------------------------------------------------------

    async def _delivered_through(self, seq: int, timeout: float | None) -> bool:
        """Whether every kept record up to ``seq`` was delivered (within ``timeout``)."""
        waits = [p.delivered_through(seq) for p in (self.publisher, self.drop_copy) if p is not None]
        if not waits:
            return True
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for future in pending:
            future.cancel()
        return not pending

    def _snapshot_busy(self) -> bool:
        return self._snapshot_task is not None and not self._snapshot_task.done()

    def _start_snapshot(self, timeout: float | None = None) -> asyncio.Task[SnapshotDone | None]:
        """Capture the state now; a task writes it once every trade it covers is delivered (the
        journal goes on being applied and published meanwhile)."""
        engine = self.engine
        seq, payload = engine.seq, engine.snapshot()
        checksum = engine.checksum() & CHECKSUM_MASK
        books = {symbol: value & CHECKSUM_MASK for symbol, value in engine.book_checksums().items()}
        self._last_capture_seq = seq
        task = asyncio.get_running_loop().create_task(
            self._write_snapshot(seq, checksum, books, payload, timeout)
        )
        self._snapshot_task, self._snapshot_task_seq = task, seq
        task.add_done_callback(lambda _: self._wakeup.set())
        return task

    async def _write_snapshot(
        self, seq: int, checksum: int, books: dict[str, int], payload: bytes, timeout: float | None
    ) -> SnapshotDone | None:
        if not await self._delivered_through(seq, timeout):
            self.counters.snapshots_skipped += 1
            lagging = ", ".join(
                f"{p.name} from seq {p.oldest_undelivered_seq}"
                for p in (self.publisher, self.drop_copy)
                if p is not None and p.oldest_undelivered_seq is not None and p.oldest_undelivered_seq <= seq
            )
            log.warning(
                "snapshot at seq %d skipped: undelivered trades (%s); the next start re-sends them",
                seq,
                lagging,
            )
            return None
        store = SnapshotStore(snapshot_dir(self.config.data_dir))
        try:
            await asyncio.to_thread(store.write, seq, checksum, payload)
        except OSError:
            log.exception("snapshot at seq %d failed", seq)
            self.counters.snapshots_failed += 1
            return None
        self._last_snapshot_seq = max(self._last_snapshot_seq, seq)
        self.counters.snapshots_written += 1
        self._send({"op": "snapshot_written", "seq": seq, "checksum": checksum})
        return seq, checksum, books

    def _serve_snapshot_requests(self) -> None:
        """Requests whose seq the follower reached share the snapshot in flight, if it covers them,
        or a new one."""
        ready = [(i, s) for i, s in self._pending_requests if s <= self.engine.seq]
        if not ready:
            return
        self._pending_requests = [(i, s) for i, s in self._pending_requests if s > self.engine.seq]
        task = self._snapshot_task
        if task is None or task.done() or self._snapshot_task_seq < max(s for _, s in ready):
            task = self._start_snapshot()
        for request_id, _ in ready:
            task.add_done_callback(functools.partial(self._answer, request_id))

    def _answer(self, request_id: int, done: asyncio.Task[SnapshotDone | None]) -> None:
        written = None if done.cancelled() or done.exception() is not None else done.result()
        if written is None:
            self._send({"op": "snapshot", "id": request_id, "error": "snapshot not written"})
        else:
            seq, checksum, books = written
            self._send({"op": "snapshot", "id": request_id, "seq": seq, "checksum": checksum, "books": books})

    async def _finish(self) -> None:
        """A final snapshot if the publishers deliver in time; then close them."""
        timeout = self.config.delivery_timeout
        snapshot = None
        if self._snapshot_busy():
            assert self._snapshot_task is not None
            await asyncio.wait([self._snapshot_task], timeout=timeout)
        if self.engine.seq > self._last_snapshot_seq and not self.config.standby:
            snapshot = await self._start_snapshot(timeout)
        for publisher in (self.publisher, self.drop_copy):
            if publisher is not None:
                await publisher.close(timeout)
        self._send({"op": "stopped", "seq": self.engine.seq, "snapshot": snapshot is not None})
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    # ---- output --------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._node_gone:
            return
        with contextlib.suppress(ConnectionError, OSError):
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def stats(self) -> dict[str, float]:
        values: dict[str, float] = {
            "meridian_follower_seq": self.engine.seq,
            "meridian_follower_snapshot_seq": self._last_snapshot_seq,
            "meridian_snapshots_written": self.counters.snapshots_written,
            "meridian_snapshots_failed": self.counters.snapshots_failed,
            "meridian_snapshots_skipped": self.counters.snapshots_skipped,
            "meridian_replica_checksum_matches": self.checksum_matches,
            "meridian_replica_checksum_mismatches": self.checksum_mismatches,
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

    async def _send_stats(self, writer: asyncio.StreamWriter) -> None:
        while True:
            self._send({"op": "stats", "values": self.stats()})
            await asyncio.sleep(STATS_INTERVAL)


def _take_lock(data_dir: Path) -> Any:
    """One follower per data directory: a new one waits for the last one's final delivery."""
    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the follower's life
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


__all__ = [
    "DURABLE_FILE",
    "SEGMENT_SUFFIX",
    "DurableSeq",
    "Follower",
    "FollowerConfig",
    "FollowerError",
    "JournalTail",
    "fills_in",
]
