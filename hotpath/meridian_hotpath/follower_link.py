"""The matching node's side of its journal follower (``follower``): start it, talk to it, stop it.

The node gives the follower three wires: a control socket (JSON lines both ways: snapshot requests
and the stop from the node; snapshot answers, its statistics and "stopped" from the follower), the
read end of a non-blocking pipe the journal's syncer writes to after every fdatasync, and the
durable seq in ``durable.seq`` (which the syncer also keeps). ``FollowerProcess`` runs the follower
as ``python -m meridian_hotpath follow`` (production: its own GIL, boto3 threads and snapshot work
never touch the matching process); ``FollowerThread`` runs the same code on a thread of this
process, with sinks that are Python objects (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from meridian.domain import Instrument
from meridian_hotpath.follower import Follower, FollowerConfig
from meridian_hotpath.marketdata import DEFAULT_DEPTH_LEVELS
from meridian_hotpath.publisher import StreamSink

log = logging.getLogger(__name__)


class SnapshotUnavailableError(Exception):
    """The follower could not write the snapshot a request asked for."""


class FollowerLink:
    """What the node holds: the control connection, the wake-up pipe, the latest statistics."""

    def __init__(self, wake: tuple[int, int]) -> None:
        """``wake``: the read and write ends of the pipe the journal's syncer writes to after each
        fdatasync. The node owns it (a standby's follower is replaced by a publishing one when it
        takes over, on the same pipe)."""
        self.stats: dict[str, float] = {}
        # (seq, engine checksum) of each snapshot the follower writes: every trade up to seq delivered.
        self.on_snapshot_written: Callable[[int, int], None] = lambda seq, checksum: None
        self.stopped: asyncio.Future[dict[str, Any]] | None = None
        self._requests: dict[int, asyncio.Future[tuple[int, int, dict[str, int]]]] = {}
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._node_side, self._follower_side = socket.socketpair()
        self.wake_read, self.wake_write = wake

    async def _connect(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.stopped = loop.create_future()
        self._reader, self._writer = await asyncio.open_connection(sock=sock)
        self._task = loop.create_task(self._read(), name="follower-link")

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            try:
                line = await self._reader.readline()
            except (ConnectionError, OSError) as exc:  # the follower died (its failure is in its log)
                log.error("the journal follower's link broke: %r", exc)
                break
            if not line:
                break
            message = json.loads(line)
            op = message.get("op")
            if op == "stats":
                self.stats = {str(k): float(v) for k, v in message["values"].items()}
            elif op == "snapshot":
                future = self._requests.pop(int(message["id"]), None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(SnapshotUnavailableError(message["error"]))
                else:
                    books = {str(k): int(v) for k, v in message["books"].items()}
                    future.set_result((int(message["seq"]), int(message["checksum"]), books))
            elif op == "snapshot_written":
                self.on_snapshot_written(int(message["seq"]), int(message["checksum"]))
            elif op == "stopped" and self.stopped is not None and not self.stopped.done():
                self.stopped.set_result(message)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(SnapshotUnavailableError("the journal follower stopped"))
        self._requests.clear()
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result({"op": "gone"})

    async def start(self) -> None:
        """Start the follower and connect to it (the kinds of follower below)."""
        raise NotImplementedError

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def verify(self, seq: int, checksum: int) -> None:
        """A standby's follower: the primary snapshotted at ``seq``; check and snapshot there too."""
        self._send({"op": "verify", "seq": seq, "checksum": checksum})

    def snapshot(self, min_seq: int) -> asyncio.Future[tuple[int, int, dict[str, int]]]:
        """A snapshot at or after ``min_seq``: resolves to (seq, engine checksum, book checksums)."""
        future: asyncio.Future[tuple[int, int, dict[str, int]]] = asyncio.get_running_loop().create_future()
        if self.stopped is not None and self.stopped.done():
            future.set_exception(SnapshotUnavailableError("the journal follower stopped"))
            return future
        self._next_id += 1
        self._requests[self._next_id] = future
        self._send({"op": "snapshot", "id": self._next_id, "seq": min_seq})
        return future

    async def stop(self, through_seq: int, timeout: float) -> dict[str, Any]:
        """Ask for a final snapshot through ``through_seq`` and wait (``timeout``) for the follower."""
        self._send({"op": "stop", "seq": through_seq})
        result: dict[str, Any] = {"op": "timeout"}
        if self.stopped is not None:
            try:
                result = await asyncio.wait_for(asyncio.shield(self.stopped), timeout)
            except TimeoutError:
                log.error("the journal follower did not stop within %.1f s", timeout)
        await self._close()
        return result

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class FollowerProcess(FollowerLink):
    """The follower as ``python -m meridian_hotpath follow`` (production)."""

    def __init__(
        self,
        config: FollowerConfig,
        wake: tuple[int, int],
        kinesis_stream: str | None,
        executions_stream: str | None,
    ) -> None:
        super().__init__(wake)
        self.config = config
        self.kinesis_stream = kinesis_stream
        self.executions_stream = executions_stream
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        follower_side, wake_read = self._follower_side, self.wake_read
        instruments = json.dumps([asdict(instrument) for instrument in self.config.instruments])
        command = [
            sys.executable, "-m", "meridian_hotpath", "follow",
            "--data-dir", str(self.config.data_dir),
            "--control-fd", str(follower_side.fileno()),
            "--wake-fd", str(wake_read),
            "--snapshot-every", str(self.config.snapshot_every),
            "--delivery-timeout", str(self.config.delivery_timeout),
            "--start-seq", str(self.config.start_seq),
            "--depth-levels", str(self.config.depth_levels),
        ]  # fmt: skip
        if self.config.standby:  # snapshots only where its primary's did: none of its own at stop
            command.append("--standby")
        if self.kinesis_stream:
            command += ["--kinesis-stream", self.kinesis_stream]
        if self.executions_stream:
            command += ["--executions-stream", self.executions_stream]
        env = {**os.environ, "MERIDIAN_FOLLOWER_INSTRUMENTS": instruments}
        self.process = subprocess.Popen(  # noqa: S603 - our own module, arguments built above
            command, pass_fds=(follower_side.fileno(), wake_read), env=env
        )
        housekeeping = os.environ.get("MERIDIAN_HOUSEKEEPING_CPUS")
        if housekeeping:  # off the engine's CPUs, which the node was pinned to (and we inherited)
            os.sched_setaffinity(self.process.pid, cpu_list(housekeeping))
        follower_side.close()
        await self._connect(self._node_side)

    async def stop(self, through_seq: int, timeout: float) -> dict[str, Any]:
        result = await super().stop(through_seq, timeout)
        if self.process is not None:
            try:
                await asyncio.to_thread(self.process.wait, timeout)
            except subprocess.TimeoutExpired:
                log.error("killing the journal follower (pid %d): it did not exit", self.process.pid)
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        return result


class FollowerThread(FollowerLink):
    """The follower on a thread of this process, with Python sinks (tests)."""

    def __init__(
        self,
        config: FollowerConfig,
        wake: tuple[int, int],
        market_data: StreamSink | None,
        executions: StreamSink | None,
    ) -> None:
        super().__init__(wake)
        self.config = config
        self.market_data = market_data
        self.executions = executions
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.follower: Follower | None = None  # for tests: its publishers and counters

    async def start(self) -> None:
        follower_side, wake_read = self._follower_side, self.wake_read
        follower = Follower(self.config, follower_side, wake_read, self.market_data, self.executions)
        self.follower = follower

        def run() -> None:
            try:
                asyncio.run(follower.run())
            except BaseException as exc:  # reported to the node's log; the test sees it too
                self.failure = exc
                log.exception("journal follower failed")
            finally:
                follower_side.close()

        self._thread = threading.Thread(target=run, name="journal-follower", daemon=True)
        self._thread.start()
        await self._connect(self._node_side)

    async def stop(self, through_seq: int, timeout: float) -> dict[str, Any]:
        result = await super().stop(through_seq, timeout)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        return result


def cpu_list(text: str) -> set[int]:
    """CPUs written as ``0,2-3``."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def instruments_from_env() -> tuple[Instrument, ...] | None:
    raw = os.environ.get("MERIDIAN_FOLLOWER_INSTRUMENTS")
    if not raw:
        return None
    return tuple(Instrument(**item) for item in json.loads(raw))


def run_follower_process(
    data_dir: Path,
    control_fd: int,
    wake_fd: int,
    snapshot_every: int,
    delivery_timeout: float,
    kinesis_stream: str | None,
    executions_stream: str | None,
    instruments: tuple[Instrument, ...],
    start_seq: int,
    depth_levels: int = DEFAULT_DEPTH_LEVELS,
    standby: bool = False,
) -> int:
    """``python -m meridian_hotpath follow``: the follower process's main."""
    from meridian_hotpath.publisher import KinesisSink  # noqa: PLC0415 - boto3 only where a stream is set

    control = socket.socket(fileno=control_fd)
    market_data = KinesisSink(kinesis_stream) if kinesis_stream else None
    executions = KinesisSink(executions_stream) if executions_stream else None
    config = FollowerConfig(
        data_dir, instruments, snapshot_every, delivery_timeout, start_seq, depth_levels, standby=standby
    )
    follower = Follower(config, control, wake_fd, market_data, executions)
    return asyncio.run(follower.run(handle_signals=True))
