"""Run a matching node: recover, listen, serve until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.session_auth import SessionKey
from meridian_hotpath.commit import AckMode, FencedError
from meridian_hotpath.follower import DurableSeq, FollowerConfig
from meridian_hotpath.follower_link import FollowerLink, FollowerProcess, FollowerThread
from meridian_hotpath.identity import claim_node_number
from meridian_hotpath.journal import DEFAULT_SEGMENT_BYTES, JournalWriter
from meridian_hotpath.logon import Authenticator
from meridian_hotpath.marketdata import DEFAULT_DEPTH_LEVELS
from meridian_hotpath.metrics import NodeMetrics
from meridian_hotpath.metrics_http import start_metrics_server
from meridian_hotpath.node import DEFAULT_DELIVERY_TIMEOUT, DEFAULT_SNAPSHOT_EVERY, MatchingNode
from meridian_hotpath.publisher import StreamSink
from meridian_hotpath.recovery import journal_dir, recover
from meridian_hotpath.replication import EpochLog
from meridian_hotpath.roles import ShardRole, cut_back, reserve_port
from meridian_hotpath.runtime_tuning import RuntimeTuning
from meridian_hotpath.server import (
    DEFAULT_MAX_OWED,
    DEFAULT_WRITE_BUFFER_HIGH,
    ConnectionLimits,
    MatchingServer,
)
from meridian_hotpath.shard import DivergedError, ShardConfig
from meridian_hotpath.volatility import DEFAULT_INTERVAL

try:
    import uvloop

    _LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
except ImportError:  # the standard loop serves where uvloop is not installed
    _LOOP_FACTORY = None

log = logging.getLogger(__name__)

STARTUP_PREFIX = "meridian-hotpath ready"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int | None = None
    instruments: tuple[Instrument, ...] = DEFAULT_INSTRUMENTS
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    depth_levels: int = DEFAULT_DEPTH_LEVELS  # price levels a side in each market-data book update
    kinesis_stream: str | None = None  # market data
    executions_stream: str | None = None  # the drop copy; None runs without one (local development)
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT  # shutdown waits so long for the publishers
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    write_buffer_high: int = DEFAULT_WRITE_BUFFER_HIGH
    socket_send_buffer: int | None = None  # bounds the kernel memory one slow client can hold
    max_owed: int = DEFAULT_MAX_OWED  # requests one client may have awaiting their journal records
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # connection cap, timeouts
    # Where the session keys come from (meridian.session_auth); None: an open port, which only
    # in-process tests and tools use (the command line asks for keys or an explicit --no-auth).
    session_keys: Callable[[], list[SessionKey]] | None = None
    ack_after: AckMode = AckMode.FSYNC  # when answers leave: journal records durable, or written
    volatility_interval: float = DEFAULT_INTERVAL  # seconds between mid-price samples (volatility.py)
    tune_runtime: bool = False  # process-wide GC and GIL settings: the command line sets it, tests don't
    node_number: int | None = None  # None: the data dir's stored number (0 for a new one)
    follower_process: bool = False  # the journal follower as its own process (the command line's way)
    expected_client_order_ids: int = 1 << 20  # a trading day's, to size the engine's table up front
    expected_live_orders: int = 1 << 16
    shard: ShardConfig | None = None  # a replicated shard: primary or standby by its lease (roles.py)


def load_instruments(path: Path) -> tuple[Instrument, ...]:
    """A JSON list of objects with Instrument's fields; raises ValueError when it is not one."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read instruments from {path}: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path} must hold a non-empty JSON list of instruments")
    names = {field.name for field in fields(Instrument)}
    instruments = []
    for item in raw:
        if not isinstance(item, dict) or not set(item) <= names or "symbol" not in item:
            raise ValueError(f"bad instrument {item!r}: fields are {sorted(names)}")
        try:
            instruments.append(Instrument(**item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad instrument {item!r}: {exc}") from None
    if len({instrument.symbol for instrument in instruments}) != len(instruments):
        raise ValueError(f"{path} lists a symbol twice")
    return tuple(instruments)


def startup_line(host: str, port: int, metrics_port: int | None, seq: int) -> str:
    metrics = "off" if metrics_port is None else str(metrics_port)
    return f"{STARTUP_PREFIX} host={host} port={port} metrics_port={metrics} seq={seq}"


class RunningNode:
    """A started node: recovered engine, journal and its syncer, the journal follower, TCP server,
    metrics endpoint.

    ``sink`` and ``executions_sink`` are Python sinks for the market data and the drop copy: the
    follower then runs on a thread of this process (tests). Without them, a follower process
    publishes to the Kinesis streams the config names (``follower_process``) or a follower thread
    publishes nothing.
    """

    def __init__(
        self, config: NodeConfig, sink: StreamSink | None = None, executions_sink: StreamSink | None = None
    ) -> None:
        self.config = config
        self._sink = sink
        self._executions_sink = executions_sink
        self.stopped = asyncio.Event()
        self.failure: BaseException | None = None

    async def start(self) -> None:
        config = self.config
        # First, before anything is read or repaired: a data dir numbered otherwise stays untouched.
        self.node_number = claim_node_number(config.data_dir, config.node_number)
        log.info("node number %d", self.node_number)
        engine, self.recovery = recover(config.data_dir, config.instruments, repair=True)
        self.recovered_epoch: int = engine.journal_epoch  # the newest epoch its journal holds
        engine.reserve(config.expected_client_order_ids, config.expected_live_orders)
        for line in self.recovery.lines():
            log.info("%s", line)
        configured = {instrument.symbol for instrument in config.instruments}
        if set(engine.instruments) != configured:
            log.warning(
                "recovered instruments %s differ from configured %s",
                sorted(engine.instruments),
                sorted(configured),
            )
        self.authenticator: Authenticator | None = None
        if config.session_keys is not None:
            # Before anything listens: a node whose keys cannot be read does not start.
            self.authenticator = Authenticator(config.session_keys(), config.session_keys)
            log.info("session logon required; keys %s", self.authenticator.key_ids)
        else:
            log.warning("the matching port is open: no session keys (in-process use or --no-auth)")
        self.metrics = metrics = NodeMetrics()
        # Bound now, listening once this node serves clients: a standby refuses connections.
        self._client_socket = reserve_port(config.host, config.port)
        self.port = self._client_socket.getsockname()[1]
        self.role: ShardRole | None = None
        leading = True
        if config.shard is not None:
            self.role = ShardRole(self, config.shard, EpochLog.load(config.data_dir))
            leading = await self.role.try_lead()
        self.durable = DurableSeq(config.data_dir)
        self.durable.set_limit(None)  # a primary of a replicated shard sets one (publish_through)
        journal = JournalWriter(journal_dir(config.data_dir), engine.seq + 1, config.segment_bytes)
        syncer = journal.start_syncer()
        syncer.share_durable(self.durable.view)
        self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # the syncer wakes the follower through it
        syncer.notify(self.wake[1])
        self.follower = self._follower(standby=not leading, start_seq=self.recovery.seq)
        if self._executions_sink is None and not config.executions_stream:
            log.warning("executions are not published: no --executions-stream, so this node has no drop copy")
        self._tuning = RuntimeTuning(metrics.gc_pauses) if config.tune_runtime else None
        self.node = MatchingNode(
            engine, journal, metrics, self.follower, config.ack_after, self.fatal, config.delivery_timeout
        )
        syncer.start()
        await self.follower.start()
        metrics.state.details["recovered_seq"] = str(self.recovery.seq)
        metrics.state.details["node_number"] = str(self.node_number)
        self.server = MatchingServer(
            self.node,
            config.write_buffer_high,
            config.socket_send_buffer,
            config.max_owed,
            config.limits,
            self.authenticator,
        )
        if self.role is None:
            await self.serve_clients()
        elif leading:
            await self.role.serve_as_primary()
            await self.serve_clients()
        else:
            self.role.start_following()
        if self.role is not None:
            role = self.role
            metrics.state.details["shard"] = role.config.shard
            self.node.extra_gauges.append(role.gauges)
        self._metrics_server: asyncio.AbstractServer | None = None
        self.metrics_port: int | None = None
        if config.metrics_port is not None:
            self._metrics_server = await start_metrics_server(metrics, config.host, config.metrics_port)
            self.metrics_port = self._metrics_server.sockets[0].getsockname()[1]
        self.node.start_volatility_sampling(config.volatility_interval)
        if self._tuning is not None:
            self._tuning.start()  # last: what start-up made is frozen out of the collector's way

    def _follower(self, standby: bool, start_seq: int) -> FollowerLink:
        config = self.config
        follower_config = FollowerConfig(
            config.data_dir,
            config.instruments,
            config.snapshot_every,
            config.delivery_timeout,
            start_seq,
            depth_levels=config.depth_levels,
            standby=standby,
        )
        if config.follower_process and self._sink is None and self._executions_sink is None:
            streams = (None, None) if standby else (config.kinesis_stream, config.executions_stream)
            return FollowerProcess(follower_config, self.wake, *streams)
        if standby:
            return FollowerThread(follower_config, self.wake, None, None)
        return FollowerThread(follower_config, self.wake, self._sink, self._executions_sink)

    async def serve_clients(self) -> None:
        await self.server.start(self.config.host, self.port, sock=self._client_socket)

    async def become_publishing(self) -> None:
        """A standby taking over: its silent follower gives way to one that publishes, re-sending
        the trades after the last snapshot its primary confirmed delivered."""
        node = self.node
        await self.follower.stop(node.journal.durable_seq, self.config.delivery_timeout + 5)
        self.follower = self._follower(standby=False, start_seq=node.engine.seq)
        node.follower = self.follower
        await self.follower.start()

    def publish_through(self, seq: int) -> None:
        """A replicated shard's primary: its follower may publish up to ``seq`` (what the standby
        holds, by the ack mode; everything this node holds when it starts leading). Only grows."""
        durable = self.durable
        limit = durable.limit
        if limit is not None and seq <= limit:
            return
        durable.set_limit(seq)
        node = getattr(self, "node", None)
        if limit is not None and node is not None and limit < node.journal.durable_seq:
            with contextlib.suppress(BlockingIOError):  # the follower waits on the limit: wake it
                os.write(self.wake[1], b"\1")

    def startup_line(self) -> str:
        return startup_line(self.config.host, self.port, self.metrics_port, self.recovery.seq)

    def fatal(self, exc: BaseException) -> None:
        self.failure = exc
        node = getattr(self, "node", None)
        if node is not None and not node.failed:
            node.fail(exc)  # calls back here, through on_fatal
            return
        self.stopped.set()

    async def shutdown(self) -> None:
        """Stop reading, commit, make the journal durable, let the follower finish, flush answers."""
        log.info("shutting down at seq %d", self.node.engine.seq)
        if self.role is not None:
            await self.role.close()
        self.server.stop_accepting()
        await self.node.close()
        await self.server.close_connections()
        self._client_socket.close()
        await self.node.stop_follower()  # what it cannot deliver in time is re-sent on the next start
        self.durable.close()
        for end in self.wake:
            os.close(end)
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self._tuning is not None:
            self._tuning.stop()


async def serve(config: NodeConfig, announce: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or a fatal failure); return the process exit code.

    A standby whose journal parted from its primary's (a deposed primary's unacknowledged tail) has
    cut it back (``roles``) and starts again at once, in this process; so does a primary that lost
    its lease (it stopped answering first): it takes the lease again if nobody else did, and
    otherwise rejoins as the standby of whoever did.
    """
    loop = asyncio.get_running_loop()
    announced = False
    while True:
        running = RunningNode(config)
        await running.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, running.stopped.set)
        if running.authenticator is not None:
            loop.add_signal_handler(signal.SIGHUP, _reload_keys, loop, running.authenticator)
        if not announced:
            (announce or _print_flush)(running.startup_line())
            announced = True
            config = _pinned(config, running)  # a restart listens where clients already connect
        try:
            await running.stopped.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await running.shutdown()
            log.info("stopped at seq %d", running.node.engine.seq)
        if not isinstance(running.failure, (DivergedError, FencedError)):
            return 1 if running.failure is not None else 0
        if isinstance(running.failure, DivergedError):
            cut_back(config.data_dir, running.failure.seq)
        log.warning("starting again after: %s", running.failure)


def _pinned(config: NodeConfig, running: RunningNode) -> NodeConfig:
    """``config`` with the ports ``running`` picked (port 0) fixed, for a restart in this process."""
    shard = config.shard
    if shard is not None and running.role is not None:
        shard = replace(shard, replication_port=running.role.replication_socket.getsockname()[1])
    metrics_port = running.metrics_port if config.metrics_port is not None else None
    return replace(config, port=running.port, metrics_port=metrics_port, shard=shard)


def _reload_keys(loop: asyncio.AbstractEventLoop, authenticator: Authenticator) -> None:
    loop.run_in_executor(None, authenticator.reload)  # off the loop: Secrets Manager is a network call


def _print_flush(line: str, stream: TextIO = sys.stdout) -> None:
    print(line, file=stream, flush=True)


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed, else on the standard loop."""
    with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
        return runner.run(coroutine)
