"""A replicated shard restored where its lease table starts afresh (the DR region's) goes on from
its journal's epochs: its first lease is above every epoch the journal holds, so a new standby
replicates the whole journal (no frame looks older than one it has seen) and can take over with
every acknowledged order, those of the shard's earlier epochs included."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from meridian.protocol import NewOrder
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.test_failover import (
    Streamer,
    assert_all_present_once,
    fail_over,
    lease_of,
    lease_table,
    start,
    wait_for,
)

pytestmark = pytest.mark.integration
# Production's lease: this test is about epochs, and under a full run a 600 ms lease can fence a
# busy primary falsely (it restarts, and the test's order stream ends with its connection).
LEASE_MS = 2000


def stream_until(port: int, prefix: str, rng: random.Random) -> Streamer:
    """Orders streaming to the node on ``port`` until it dies, once 200 have been answered."""
    streamer = Streamer(port, prefix, rng)
    wait_for(lambda: len(streamer.acked) > 200, f"orders answered ({prefix})")
    return streamer


def test_a_restored_shard_leads_above_its_journals_epochs_and_its_new_standby_follows(
    tmp_path: Path, moto_endpoint: str
) -> None:
    lease_table(moto_endpoint)
    rng = random.Random(18)
    acked: dict[str, NewOrder] = {}
    nodes: list[NodeProcess] = []
    try:
        # The primary region: epoch 1 on n1, then n2 takes over in epoch 2.
        n1 = start(tmp_path / "n1", "n1", moto_endpoint, "PROD", LEASE_MS)
        nodes.append(n1)
        n2 = start(tmp_path / "n2", "n2", moto_endpoint, "PROD", LEASE_MS)
        nodes.append(n2)
        wait_for(lambda: lease_of(moto_endpoint, "PROD")["in_sync"], "the standby in sync")
        first = stream_until(n1.port, "e1", rng)
        fail_over(n1, n2, first)
        assert lease_of(moto_endpoint, "PROD")["epoch"] == 2
        second = stream_until(n2.port, "e2", rng)
        n2.stop()
        second.thread.join(10)
        acked.update(first.acked)
        acked.update(second.acked)

        # Restored elsewhere (n2's journal: epochs 1 and 2) under a lease item of its own.
        restored = start(tmp_path / "n2", "dr-a", moto_endpoint, "DR", LEASE_MS)
        nodes.append(restored)
        wait_for(lambda: lease_of(moto_endpoint, "DR")["holder"] == "dr-a", "the restored node leading")
        assert lease_of(moto_endpoint, "DR")["epoch"] == 3  # not 1: above the journal's epochs
        fresh = start(tmp_path / "dr-b", "dr-b", moto_endpoint, "DR", LEASE_MS)
        nodes.append(fresh)
        wait_for(lambda: lease_of(moto_endpoint, "DR")["in_sync"], "the new standby in sync")
        third = stream_until(restored.port, "e3", rng)
        fail_over(restored, fresh, third)
        acked.update(third.acked)
        assert assert_all_present_once(fresh.port, acked) == len(acked)
    finally:
        for node in nodes:
            node.stop()
