"""How often a standby reads its shard's lease: linked to a live primary, once the lease could run
out (each read is a DynamoDB request and boto3's CPU and GIL on the standby's loop), else every
``poll_s``; a dropped link makes it read at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from meridian_hotpath.lease import Lease
from meridian_hotpath.replication import EpochLog
from meridian_hotpath.roles import ShardRole
from meridian_hotpath.shard import ShardConfig

POLL_S = 0.01


class LiveLeaseStore:
    """The primary's lease, renewed: it runs out ``ahead_ms`` after each read. Counts the reads."""

    def __init__(self, ahead_ms: int) -> None:
        self.ahead_ms = ahead_ms
        self.reads = 0

    def read(self, shard: str) -> Lease | None:
        self.reads += 1
        expires = time.time_ns() // 1_000_000 + self.ahead_ms
        return Lease(shard, "primary", 3, expires, "127.0.0.1:1", "127.0.0.1:2", in_sync=True)


def role_with(store: LiveLeaseStore, tmp_path: Path, ttl_ms: int = 2_000) -> ShardRole:
    running: Any = SimpleNamespace(
        node=SimpleNamespace(follower=SimpleNamespace(stats={})),
        config=SimpleNamespace(host="127.0.0.1"),
        port=1,
    )
    config = ShardConfig("S", "standby", store, ttl_ms=ttl_ms, skew_ms=0, poll_s=POLL_S)  # type: ignore[arg-type]
    return ShardRole(running, config, EpochLog.load(tmp_path))


def reads_while_watching(
    role: ShardRole, store: LiveLeaseStore, seconds: float, drop_at: float | None
) -> int:
    async def run() -> None:
        task = asyncio.create_task(role._watch_lease())
        if drop_at is not None:
            await asyncio.sleep(drop_at)
            role.link = None  # what the link's callback does when it drops
            role._look_at_lease.set()
            await asyncio.sleep(seconds - drop_at)
        else:
            await asyncio.sleep(seconds)
        role._stop_following.set()
        role._look_at_lease.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    role.replication_socket.close()
    return store.reads


def test_a_linked_standby_reads_the_lease_once_it_could_run_out_not_every_poll(tmp_path: Path) -> None:
    store = LiveLeaseStore(ahead_ms=150)
    role = role_with(store, tmp_path)
    role.link = object()  # type: ignore[assignment]
    reads = reads_while_watching(role, store, 0.5, drop_at=None)
    assert 2 <= reads <= 5  # about every 150 ms: polling would have read about 50 times


def test_an_unlinked_standby_polls_the_lease(tmp_path: Path) -> None:
    store = LiveLeaseStore(ahead_ms=150)
    role = role_with(store, tmp_path)
    assert reads_while_watching(role, store, 0.3, drop_at=None) >= 10


def test_a_dropped_link_makes_the_standby_read_the_lease_at_once_then_poll(tmp_path: Path) -> None:
    store = LiveLeaseStore(ahead_ms=10_000)  # far ahead: linked, the next read would be ttl away
    role = role_with(store, tmp_path, ttl_ms=10_000)
    role.link = object()  # type: ignore[assignment]
    reads = reads_while_watching(role, store, 0.4, drop_at=0.1)
    assert reads >= 10  # one at the start, one at the drop, then every poll_s


def test_the_wait_until_the_next_read_is_capped_by_the_ttl_and_floored_by_the_poll(tmp_path: Path) -> None:
    role = role_with(LiveLeaseStore(0), tmp_path, ttl_ms=2_000)
    role.link = object()  # type: ignore[assignment]
    now = 1_000_000
    lease = Lease("S", "primary", 3, now + 600, "a:1", "a:2", in_sync=True)
    assert role._next_look(lease, now) == 0.6
    assert role._next_look(replace(lease, expires_at_ms=now + 60_000), now) == 2.0  # a clock far off
    assert role._next_look(replace(lease, expires_at_ms=now - 5), now) == POLL_S  # run out already
    assert role._next_look(None, now) == POLL_S
    role.link = None
    assert role._next_look(lease, now) == POLL_S
