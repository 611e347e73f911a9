"""Primary and standby: how a node of a replicated shard takes its role, keeps it, and changes it.

* At start a node tries to take its shard's lease (``lease``). If it does, it is the **primary**:
  it listens for clients, feeds a standby over its replication port (``replication``), renews its
  lease every ``ttl / 3`` and answers only while the lease is certainly its own (``HeldLease.valid``:
  a primary that cannot renew stops answering before the lease can run out).
* Otherwise it is the **standby**: it does not listen for clients (a client's connection is
  refused, and it tries the shard's other address); it follows the primary's journal
  (``shard.StandbyLink``), and watches the lease. When the lease has run out, it takes it (a new
  epoch), stops following, switches its journal follower from a silent standby follower to a
  publishing one (which re-sends the trades after the last snapshot the primary confirmed
  delivered), and starts serving as the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meridian_hotpath.commit import AckMode, FencedError
from meridian_hotpath.lease import HeldLease, Lease, LeaseError
from meridian_hotpath.native_link import NativeStandbyLink, connect_native
from meridian_hotpath.recovery import journal_dir, snapshot_dir
from meridian_hotpath.replication import EpochLog, ReplicationServer, truncate_journal_after
from meridian_hotpath.shard import DivergedError, ShardConfig, StandbyLink, connect_on_loop, follow
from meridian_hotpath.snapshot import SnapshotStore

if TYPE_CHECKING:
    from meridian_hotpath.app import RunningNode

log = logging.getLogger(__name__)


def reserve_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` but not listening: connections to it are refused until
    the node starts serving on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class ShardRole:
    """The role logic of one running node (see the module docstring)."""

    def __init__(self, running: RunningNode, config: ShardConfig, epochs: EpochLog) -> None:
        self.running = running
        self.config = config
        self.epochs = epochs
        self.held: HeldLease | None = None
        self.role = "standby"
        self.takeovers = 0
        self.replication: ReplicationServer | None = None
        self.link: StandbyLink | None = None
        self.primary_address: tuple[str, int] | None = None
        self._stop_following = asyncio.Event()
        self._look_at_lease = asyncio.Event()  # the link dropped: read the lease now
        self._tasks: list[asyncio.Task[None]] = []
        self.replication_socket = reserve_port(config.replication_host, config.replication_port)
        advertised = config.advertise_host or config.replication_host
        self.replication_address = (
            config.advertise_replication or f"{advertised}:{self.replication_socket.getsockname()[1]}"
        )
        self.promoted_at: float | None = None
        self._said_out_of_sync = False
        self._said_state_differs = False

    # ---- at start ------------------------------------------------------------------------------

    async def try_lead(self) -> bool:
        """Take the lease if nobody holds a live one. True: this node is the primary."""
        config = self.config
        current = await asyncio.to_thread(config.store.read, config.shard)
        if current is not None and current.replication:
            self.primary_address = _address(current.replication)
        now_ms = time.time_ns() // 1_000_000
        if (
            current is not None
            and current.holder != config.node_id
            and not current.expired(now_ms, config.skew_ms)
        ):
            return False
        lease = await asyncio.to_thread(
            config.store.acquire,
            config.shard,
            config.node_id,
            config.ttl_ms,
            config.client_address
            or f"{config.advertise_host or self.running.config.host}:{self.running.port}",
            self.replication_address,
            self.journal_epoch() + 1,
        )
        if lease is None:
            return False
        self.held = HeldLease(config.store, lease, config.ttl_ms, config.margin_ms)
        return True

    def journal_epoch(self) -> int:
        """The newest epoch this node's journal holds (0 for an empty one)."""
        noted = self.epochs.entries[-1][0] if self.epochs.entries else 0
        node = getattr(self.running, "node", None)  # None until the node is built (at start)
        current = self.running.recovered_epoch if node is None else node.engine.journal_epoch
        return max(noted, current)

    # ---- primary -------------------------------------------------------------------------------

    async def serve_as_primary(self) -> None:
        """Start everything a primary does (after ``try_lead`` or a takeover)."""
        held = self.held
        assert held is not None
        running = self.running
        node = running.node
        engine = node.engine
        self.role = "primary"
        engine.journal_epoch = held.epoch
        self.epochs.note(held.epoch, engine.seq + 1)
        committer = node.committer
        self.replication = ReplicationServer(
            journal_dir(running.config.data_dir),
            self.epochs,
            lambda: held.epoch,
            lambda: running.node.journal.next_seq - 1,
            committer.replicated,
            self._standby_live,
        )
        await self.replication.start_on(self.replication_socket)
        committer.forward = self.replication.forward
        committer.may_answer = held.valid
        # Trades are published as far as answers leave, never past what the standby holds.
        running.publish_through(engine.seq)
        committer.on_safe = running.publish_through
        node.publish_limit = lambda: running.durable.limit
        node.follower.on_snapshot_written = self.replication.check
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._renew_forever(), name="lease-renewal"))
        self._tasks.append(loop.create_task(self._watch_standby(), name="standby-watch"))
        log.info("primary of shard %s in epoch %d from seq %d", self.config.shard, held.epoch, engine.seq)

    def _standby_live(self, live: bool) -> None:
        """The standby caught up (live) or its link dropped. Losing it, the primary answers from its
        own disk only once the lease says the standby is out of sync (it must then not take over)."""
        committer = self.running.node.committer
        self._pace_disk(self.config.replica_sync_gap if live else 0.0)
        if live:
            committer.standby_connected(True)
            self._spawn(self._write_in_sync(True))
            return
        committer.alone_allowed = False
        committer.standby_connected(False)
        self._spawn(self._write_in_sync(False))

    def _pace_disk(self, gap: float) -> None:
        """``--ack-after replica``: a node whose disk no answer waits for (a standby; a primary with a
        live standby) syncs at most every ``gap`` seconds; one whose disk answers, continuously."""
        syncer = self.running.node.journal.syncer
        if self.running.config.ack_after is AckMode.REPLICA and syncer is not None:
            syncer.pace(gap)

    async def _write_in_sync(self, in_sync: bool) -> None:
        held = self.held
        assert held is not None
        if not await asyncio.to_thread(held.renew, in_sync):
            self.running.fatal(
                FencedError(f"lost the lease of shard {self.config.shard} (epoch {held.epoch})")
            )
            return
        committer = self.running.node.committer
        if not in_sync and not committer.replica_live:
            committer.alone_allowed = True
            committer.release_safe()
            log.warning("no standby in sync: answering from this node's disk alone")

    async def _watch_standby(self) -> None:
        """A standby that stops acknowledging (stalled, or its link cut) is let go after
        ``replica_timeout``: the primary then goes on alone rather than stop answering."""
        committer = self.running.node.committer
        while True:
            await asyncio.sleep(self.config.replica_timeout / 5)
            oldest = committer.oldest_waiting_ns()
            server = self.replication
            if oldest is None or server is None or server.standby is None or not committer.replica_live:
                continue
            if (time.perf_counter_ns() - oldest) / 1e9 > self.config.replica_timeout:
                waited = self.config.replica_timeout * 1000
                log.warning("the standby has not acknowledged for %.0f ms: letting it go", waited)
                server.standby.close()

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine))

    async def _renew_forever(self) -> None:
        held = self.held
        assert held is not None
        while True:
            await asyncio.sleep(self.config.renew_every)
            in_sync = self.running.node.committer.replica_live
            if not await asyncio.to_thread(held.renew, in_sync) or not held.valid():
                self.running.fatal(
                    FencedError(f"lost the lease of shard {self.config.shard} (epoch {held.epoch})")
                )
                return

    # ---- standby -------------------------------------------------------------------------------

    def start_following(self) -> None:
        running = self.running
        node = running.node
        # Its primary answers once this standby has written a batch; its own fdatasync, each of
        # which can hold up the write of the next batch, is then no part of any answer.
        self._pace_disk(self.config.replica_sync_gap)

        parts = (node.engine, node.journal, self.epochs, self._checked, self._diverged)

        def connect(address: tuple[str, int]) -> Awaitable[StandbyLink]:
            if self.config.native_receiver:
                return connect_native(address, lambda: NativeStandbyLink(*parts))
            return connect_on_loop(address, lambda: StandbyLink(*parts))

        def linked(link: StandbyLink | None) -> None:
            self.link = link
            if link is None:
                self._look_at_lease.set()

        node.committer.on_durable.append(lambda: self.link.acknowledge() if self.link is not None else None)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._follow(connect, linked), name="standby-link"))
        self._tasks.append(loop.create_task(self._watch_lease(), name="lease-watch"))

    async def _follow(
        self,
        connect: Callable[[tuple[str, int]], Awaitable[StandbyLink]],
        linked: Callable[[StandbyLink | None], None],
    ) -> None:
        while not self._stop_following.is_set():
            address = self.primary_address
            if address is None:
                await asyncio.sleep(self.config.poll_s)
                continue
            await follow(address, connect, self._stop_following, linked)

    def _checked(self, seq: int, checksum: int) -> None:
        self.running.node.follower.verify(seq, checksum)

    def _state_differs(self) -> bool:
        """Whether this standby's engine ever differed from its primary's at a snapshot (a CHECK's
        checksum mismatched): its book is not the shard's, so it must never take the shard over, even
        in sync; an operator replaces it (the checksum-mismatch alarm)."""
        stats = self.running.node.follower.stats
        if stats.get("meridian_replica_checksum_mismatches", 0) <= 0:
            return False
        if not self._said_state_differs:
            self._said_state_differs = True
            log.error(
                "this standby's state differed from its primary's at a snapshot: it will not take the"
                " shard over; replace it (a new standby copies the primary's journal)"
            )
        return True

    def _diverged(self, seq: int) -> None:
        """Stop, to cut this node's journal back to where it and the primary's agree (``cut_back``,
        once the node and its follower have stopped: a follower still running could snapshot the
        tail again) and start again as a standby."""
        self.running.fatal(DivergedError(seq))

    async def _watch_lease(self) -> None:
        config = self.config
        wait = config.poll_s
        while not self._stop_following.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look_at_lease.wait(), wait)
            self._look_at_lease.clear()
            wait = config.poll_s
            try:
                lease = await asyncio.to_thread(config.store.read, config.shard)
            except LeaseError as exc:
                log.warning("cannot read the lease: %s", exc)
                continue
            if lease is not None and lease.replication and lease.holder != config.node_id:
                self.primary_address = _address(lease.replication)
            now_ms = time.time_ns() // 1_000_000
            if (lease is None or lease.may_take_over(now_ms, config.skew_ms)) and self._state_differs():
                continue
            if lease is None or lease.may_take_over(now_ms, config.skew_ms):
                if await self._take_over(lease):
                    return
            elif lease.expired(now_ms, config.skew_ms) and not self._said_out_of_sync:
                self._said_out_of_sync = True
                log.error(
                    "the primary's lease ran out but this standby was not in sync with it: only %s may"
                    " take the shard back (it holds acknowledged orders this one lacks)",
                    lease.holder,
                )
            wait = self._next_look(lease, now_ms)

    def _next_look(self, lease: Lease | None, now_ms: int) -> float:
        """Seconds until the lease is worth reading again. Linked to its primary, the standby reads it
        once it could run out (the primary renews it well before: that read finds the new expiry),
        not every ``poll_s``: a lease read is a DynamoDB request, and boto3's CPU and GIL on this
        node's loop. Without a link (or a lease that says nothing), every ``poll_s``; a dropped link
        ends the wait at once."""
        config = self.config
        if lease is None or self.link is None or lease.holder == config.node_id:
            return config.poll_s
        until_ms = lease.expires_at_ms + config.skew_ms - now_ms
        return min(max(config.poll_s, until_ms / 1000), config.ttl_ms / 1000)

    async def _take_over(self, seen: Lease | None) -> bool:
        """The primary's lease ran out: take it and serve (True), or someone else did (False)."""
        if not await self.try_lead():
            return False
        started = time.monotonic()
        self._stop_following.set()
        if self.link is not None:
            self.link.close()
        running = self.running
        self._pace_disk(0.0)  # alone, its own disk answers (until its new standby is live)
        await running.become_publishing()
        await self.serve_as_primary()
        await running.serve_clients()
        self.takeovers += 1
        self.promoted_at = time.monotonic()
        log.warning(
            "took over shard %s from %s in epoch %d (%.1f ms)",
            self.config.shard,
            "nobody" if seen is None else seen.holder,
            self.held.epoch if self.held else 0,
            (self.promoted_at - started) * 1000,
        )
        return True

    # ---- both ----------------------------------------------------------------------------------

    def gauges(self) -> dict[str, float]:
        committer = self.running.node.committer
        values: dict[str, float] = {
            "meridian_role_primary": float(self.role == "primary"),
            "meridian_lease_epoch": float(
                self.held.epoch if self.held else self.running.node.engine.journal_epoch
            ),
            "meridian_takeovers": float(self.takeovers),
        }
        syncer = self.running.node.journal.syncer
        if syncer is not None:
            values["meridian_journal_sync_gap_seconds"] = float(syncer.sync_gap)
        if self.role == "primary":
            written = self.running.node.journal.next_seq - 1
            values |= {
                "meridian_replication_connected": float(committer.replica_live),
                "meridian_replication_lag_records": float(max(0, written - committer.replica_written)),
                "meridian_lease_renewals": float(self.held.renewals if self.held else 0),
            }
        elif self.link is not None:
            values |= {"meridian_replication_received": float(self.link.received)}
            receiver = self.link.receiver if isinstance(self.link, NativeStandbyLink) else None
            if receiver is not None:  # the native path: batches its thread took, frames the loop took
                values |= {
                    "meridian_replication_native_batches": float(receiver.fast_frames),
                    "meridian_replication_loop_frames": float(receiver.handed_frames),
                }
        return values

    async def close(self) -> None:
        self._stop_following.set()
        for task in self._tasks:
            task.cancel()
        if self.link is not None:
            self.link.close()
        if self.replication is not None:
            await self.replication.close()
        self.replication_socket.close()


def cut_back(data_dir: Path, seq: int) -> int:
    """Cut a stopped node's journal, epoch log and snapshots back to ``seq``; records cut."""
    cut = truncate_journal_after(journal_dir(data_dir), seq)
    EpochLog.load(data_dir).truncate_after(seq)
    for snapshot in SnapshotStore(snapshot_dir(data_dir)).files():
        if snapshot.seq > seq:
            snapshot.path.unlink()
    log.warning("cut %d records a deposed primary wrote after seq %d; restarting as a standby", cut, seq)
    return cut


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)
