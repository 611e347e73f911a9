"""A replicated shard whose replication link is slow or cut (a fault proxy on loopback between them).

The primary advertises the proxy as its replication address (``--advertise-replication``), so the
standby's link runs through it. A slow link delays acknowledgements but loses nothing, and the
standby that took over holds every acknowledged order. A cut link makes the primary let its standby
go after the replica timeout and trade on alone, saying so (the lease's ``in_sync``, the
``meridian_replication_connected`` gauge); once the link heals the standby catches up, and after a
takeover it holds every order, those acknowledged while it was cut off included.
"""

from __future__ import annotations

import contextlib
import random
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meridian_hotpath.process import NodeProcess
from meridian_hotpath.shard import REPLICA_SYNC_GAP_S
from tests.integration.hotpath.fault_proxy import FaultProxy
from tests.integration.hotpath.kinesis_server import AWS_ENV
from tests.integration.hotpath.test_failover import (
    TABLE,
    TTL_MS,
    Streamer,
    assert_all_present_once,
    fail_over,
    lease_of,
    lease_table,
    wait_for,
)

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    data_dir: Path, name: str, endpoint: str, shard: str, *extra: str, replica_timeout_ms: int = 5000
) -> NodeProcess:
    return NodeProcess.start(
        data_dir,
        *("--shard", shard, "--lease-table", TABLE, "--node-id", name, "--ack-after", "replica"),
        *("--lease-ttl-ms", str(TTL_MS), "--snapshot-every", "300", "--metrics-port", "0"),
        *("--replica-timeout-ms", str(replica_timeout_ms)),
        *(extra or ("--replication-port", "0")),
        env={**AWS_ENV, "AWS_ENDPOINT_URL": endpoint},
    )


def behind_proxy(
    data_dir: Path, name: str, endpoint: str, shard: str, delay: float, replica_timeout_ms: int
) -> tuple[NodeProcess, FaultProxy]:
    """A node that will lead, whose replication port its standby reaches through a FaultProxy."""
    port = free_port()
    proxy = FaultProxy(("127.0.0.1", port), delay)
    args = ("--replication-port", str(port), "--advertise-replication", proxy.address)
    try:
        node = start(data_dir, name, endpoint, shard, *args, replica_timeout_ms=replica_timeout_ms)
    except BaseException:
        proxy.close()
        raise
    return node, proxy


def gauge(node: NodeProcess, name: str) -> float:
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no {name} gauge")


def connected(node: NodeProcess) -> float:
    return gauge(node, "meridian_replication_connected")


@contextlib.contextmanager
def pair_through_proxy(
    tmp_path: Path, endpoint: str, shard: str, delay: float, replica_timeout_ms: int
) -> Iterator[tuple[NodeProcess, NodeProcess, FaultProxy]]:
    """A primary and its standby in sync, the link between them through a FaultProxy."""
    lease_table(endpoint)
    primary, proxy = behind_proxy(tmp_path / "p", "p", endpoint, shard, delay, replica_timeout_ms)
    standby = None
    try:
        standby = start(tmp_path / "s", "s", endpoint, shard)
        wait_for(lambda: lease_of(endpoint, shard)["in_sync"], "the standby in sync through the proxy")
        yield primary, standby, proxy
    finally:
        primary.stop()
        if standby is not None:
            standby.stop()
        proxy.close()


def test_a_slow_link_delays_answers_but_the_standby_holds_every_acknowledged_order(
    tmp_path: Path, moto_endpoint: str
) -> None:
    with pair_through_proxy(tmp_path, moto_endpoint, "SLOW", 0.02, 5000) as (primary, standby, proxy):
        assert proxy.connections >= 1
        streamer = Streamer(primary.port, "slow", random.Random(3))
        wait_for(lambda: len(streamer.acked) > 300, "orders answered over the slow link")
        assert lease_of(moto_endpoint, "SLOW")["holder"] == "p"  # slow is not dead: no takeover
        assert lease_of(moto_endpoint, "SLOW")["in_sync"] is True
        # replica mode: no disk is part of an answer while the standby is live, so each node syncs
        # every 5 ms at most
        assert gauge(standby, "meridian_journal_sync_gap_seconds") == REPLICA_SYNC_GAP_S
        assert gauge(primary, "meridian_journal_sync_gap_seconds") == REPLICA_SYNC_GAP_S
        # the standby's native thread wrote and acknowledged the batches; the loop took the first
        assert gauge(standby, "meridian_replication_native_batches") > 0
        assert gauge(standby, "meridian_replication_loop_frames") >= 1
        fail_over(primary, standby, streamer)
        assert assert_all_present_once(standby.port, streamer.acked) == len(streamer.acked)
        assert gauge(standby, "meridian_journal_sync_gap_seconds") == 0.0  # alone: its disk answers


def test_a_cut_link_leaves_the_primary_trading_alone_and_a_healed_one_catches_the_standby_up(
    tmp_path: Path, moto_endpoint: str
) -> None:
    with pair_through_proxy(tmp_path, moto_endpoint, "CUT", 0.0, 1000) as (primary, standby, proxy):
        assert connected(primary) == 1.0
        proxy.cut()
        streamer = Streamer(primary.port, "cut", random.Random(5))
        wait_for(lambda: len(streamer.acked) > 500, "orders answered with the link cut")
        assert lease_of(moto_endpoint, "CUT")["in_sync"] is False  # and it says so
        assert connected(primary) == 0.0
        assert gauge(primary, "meridian_journal_sync_gap_seconds") == 0.0  # alone: its disk answers
        assert lease_of(moto_endpoint, "CUT")["holder"] == "p"  # the standby, cut off, took nothing
        alone = len(streamer.acked)

        proxy.heal()  # the standby reconnects and catches up while the primary trades on
        wait_for(lambda: lease_of(moto_endpoint, "CUT")["in_sync"], "the standby in sync after the cut")
        wait_for(lambda: len(streamer.acked) > alone + 300, "orders answered after the link healed")
        assert connected(primary) == 1.0
        assert gauge(primary, "meridian_journal_sync_gap_seconds") == REPLICA_SYNC_GAP_S
        # the standby's native thread wrote and acknowledged the batches; the loop took the first
        assert gauge(standby, "meridian_replication_native_batches") > 0
        assert gauge(standby, "meridian_replication_loop_frames") >= 1
        fail_over(primary, standby, streamer)
        # Every acknowledged order, those answered while the standby was cut off included.
        assert assert_all_present_once(standby.port, streamer.acked) == len(streamer.acked)
