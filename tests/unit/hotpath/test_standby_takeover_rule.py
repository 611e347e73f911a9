"""When a standby may take its shard: in sync with its dead primary, and never if its engine ever
differed from the primary's at a snapshot (a CHECK's checksum mismatched): its book is not the
shard's, whatever its journal says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from meridian_hotpath.lease import Lease
from meridian_hotpath.replication import EpochLog
from meridian_hotpath.roles import ShardRole
from meridian_hotpath.shard import ShardConfig


class ExpiredLeaseStore:
    """The primary's lease, long run out, with its standby in sync at its last renewal."""

    def read(self, shard: str) -> Lease | None:
        return Lease(shard, "primary", 4, 0, "127.0.0.1:1", "127.0.0.1:2", in_sync=True)


def watch(tmp_path: Path, mismatches: float) -> list[Any]:
    """Run the standby's lease watch briefly; the takeovers it attempted."""
    follower = SimpleNamespace(stats={"meridian_replica_checksum_mismatches": mismatches})
    running: Any = SimpleNamespace(
        node=SimpleNamespace(follower=follower), config=SimpleNamespace(host="127.0.0.1"), port=1
    )
    config = ShardConfig("S", "standby", ExpiredLeaseStore(), poll_s=0.005)  # type: ignore[arg-type]
    role = ShardRole(running, config, EpochLog.load(tmp_path))
    attempts: list[Any] = []

    async def take_over(seen: Lease | None) -> bool:
        attempts.append(seen)
        return True

    role._take_over = take_over  # type: ignore[method-assign]

    async def run() -> None:
        task = asyncio.create_task(role._watch_lease())
        await asyncio.sleep(0.1)
        role._stop_following.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    role.replication_socket.close()
    return attempts


def test_an_in_sync_standby_takes_over_an_expired_lease(tmp_path: Path) -> None:
    assert len(watch(tmp_path, mismatches=0)) == 1


def test_a_standby_whose_state_differed_never_takes_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert watch(tmp_path, mismatches=1) == []
    said = [r.message for r in caplog.records if "will not take the shard over" in r.message]
    assert len(said) == 1  # said once, not every poll
