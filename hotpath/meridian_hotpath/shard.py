"""A node's place in its shard: primary (holds the lease, serves clients, feeds the standby) or
standby (follows the primary's journal, takes over when the primary's lease runs out).

``ShardConfig`` names the shard, this node, the lease store and the addresses this node advertises.
``StandbyLink`` is the standby's end of the replication link (``replication``): it writes and applies
what the primary sends, acknowledges it, and reconnects until it is told to stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter
from meridian_hotpath.lease import DEFAULT_SKEW_MS, DEFAULT_TTL_MS, LeaseStore
from meridian_hotpath.replication import (
    ACK,
    ACK_BODY,
    CHECK,
    CHECK_BODY,
    DIVERGED,
    HELLO,
    HELLO_BODY,
    RECORDS,
    RECORDS_BODY,
    REFUSE,
    SEQ_BODY,
    EpochLog,
    LinkReader,
    ReplicationError,
    epochs_in,
    link_frame,
)

log = logging.getLogger(__name__)

RECONNECT_DELAY = 0.05
REPLICA_SYNC_GAP_S = 0.005  # ShardConfig.replica_sync_gap's default


@dataclass(frozen=True, slots=True)
class ShardConfig:
    shard: str
    node_id: str
    store: LeaseStore
    client_address: str = ""  # host:port clients reach this node on ("": the node's own host:port)
    replication_host: str = "127.0.0.1"  # where the replication port listens
    replication_port: int = 0  # 0: picked at start
    advertise_host: str = ""  # the host other nodes reach this one at ("": replication_host)
    # host:port its standby connects to when that is not the port it listens on (a port mapping or
    # a proxy between the pair); "": advertise_host and the replication port
    advertise_replication: str = ""
    ttl_ms: int = DEFAULT_TTL_MS
    margin_ms: int = DEFAULT_TTL_MS // 4  # the primary stops answering this long before its lease ends
    skew_ms: int = DEFAULT_SKEW_MS  # clock skew a standby allows before taking an expired lease
    poll_s: float = 0.1  # how often a standby looks at the lease
    replica_timeout: float = 0.5  # seconds a primary waits for a standby's acknowledgement
    # --ack-after replica: each node's fdatasync at most this often (seconds; 0: continuously): the
    # standby's always, the primary's while its standby is live. No disk is then part of an answer
    # (the standby's write is); both hosts would have to fail within the gap to lose an acknowledged
    # order. A primary without a live standby answers from its own disk and syncs continuously.
    replica_sync_gap: float = REPLICA_SYNC_GAP_S
    # as a standby, read the link on a native thread that writes and acknowledges each ordinary
    # batch without the event loop (``native_link``); False: on the loop (``StandbyLink``, the
    # reference)
    native_receiver: bool = True

    @property
    def renew_every(self) -> float:
        return self.ttl_ms / 3000


class DivergedError(Exception):
    """This node's journal holds records its primary's does not: cut back to ``seq`` and restart."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"the journal parts from the primary's after seq {seq}")
        self.seq = seq


class StandbyLink(asyncio.Protocol):
    """The standby's end of the replication link."""

    def __init__(
        self,
        engine: MatchingEngine,
        journal: JournalWriter,
        epochs: EpochLog,
        on_check: Callable[[int, int], None],
        on_diverged: Callable[[int], None],
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.epochs = epochs
        self._on_check = on_check
        self._on_diverged = on_diverged
        self.reader = LinkReader()
        self.transport: asyncio.Transport | None = None
        self.primary_epoch = 0
        self.connected = asyncio.Event()
        self.lost = asyncio.Event()
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected.set()
        self.send(HELLO, HELLO_BODY.pack(self.engine.seq, self.engine.journal_epoch))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    def send(self, kind: int, payload: bytes = b"") -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(link_frame(kind, payload))

    def acknowledge(self, written: int | None = None) -> None:
        """ACK: the journal written up to ``written`` (default: as far as the engine applied it)."""
        seq = self.engine.seq if written is None else written
        self.send(ACK, ACK_BODY.pack(seq, self.journal.durable_seq))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.handle(self.reader.feed(data))
        except ReplicationError as exc:
            self.broken(exc)

    def handle(self, frames: list[tuple[int, bytes]]) -> bool:
        """Act on frames from the primary; False once the link is done with (it is then closed).
        Raises ReplicationError on records this standby cannot take."""
        for kind, payload in frames:
            if kind == RECORDS:
                self._records(payload)
            elif kind == CHECK:
                self._on_check(*CHECK_BODY.unpack_from(payload))
            elif kind == DIVERGED:
                self._on_diverged(SEQ_BODY.unpack_from(payload)[0])
                self.close()
                return False
            elif kind == REFUSE:
                log.error("the primary refuses this standby: %s", payload.decode(errors="replace"))
                self.close()
                return False
        return True

    def broken(self, exc: ReplicationError) -> None:
        log.error("replication link: %s; reconnecting", exc)
        self.send(REFUSE, str(exc).encode())
        self.close()

    def _records(self, payload: bytes) -> None:
        epoch, first, last = RECORDS_BODY.unpack_from(payload)
        if epoch < self.primary_epoch:
            raise ReplicationError(
                f"records from epoch {epoch}: this standby follows epoch {self.primary_epoch}"
            )
        self.primary_epoch = epoch
        if first != self.engine.seq + 1:
            raise ReplicationError(f"records from seq {first}: this standby is at seq {self.engine.seq}")
        records = payload[RECORDS_BODY.size :]
        self.journal.write_records(records, last)
        for record_epoch, seq in epochs_in(records):
            if not self.epochs.entries or record_epoch > self.epochs.entries[-1][0]:
                self.epochs.note(record_epoch, seq)
        # Written, the batch is held: the primary's answers wait for this, not for the engine here
        # (which applies it before anything else runs on this loop, a takeover included).
        self.acknowledge(last)
        self.apply(records, first, last)

    def apply(self, records: bytes, first: int, last: int) -> None:
        """Apply written records to the engine (the journal holds them)."""
        end, applied, defect, _, _ = self.engine.replay(records)
        if defect is not None or end != len(records) or self.engine.seq != last:
            raise ReplicationError(f"records {first}-{last} do not apply: {defect}")
        self.received += applied


async def connect_on_loop(address: tuple[str, int], make_link: Callable[[], StandbyLink]) -> StandbyLink:
    """A link read by the event loop (the reference receive path)."""
    _, link = await asyncio.get_running_loop().create_connection(make_link, *address)
    return link


async def follow(
    address: tuple[str, int],
    connect: Callable[[tuple[str, int]], Awaitable[StandbyLink]],
    stop: asyncio.Event,
    on_link: Callable[[StandbyLink | None], None],
) -> None:
    """One link to the primary at ``address``, until it drops or ``stop`` is set (the caller
    reconnects, to wherever the lease then says the primary is)."""
    loop = asyncio.get_running_loop()
    try:
        link = await connect(address)
    except OSError:
        await asyncio.sleep(RECONNECT_DELAY)
        return
    on_link(link)
    stopped = loop.create_task(stop.wait())
    lost = loop.create_task(link.lost.wait())
    await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    lost.cancel()
    on_link(None)
    link.close()
    if not stop.is_set():
        await asyncio.sleep(RECONNECT_DELAY)
