"""What a replicated shard's nodes tell AWS, read from live nodes.

* CloudWatch: the bridge (hotpath/deploy/cloudwatch_bridge.py, as it runs beside each node in AWS)
  scrapes a primary and its standby, then the standby after it took over from the killed primary.
  The observability stack's alarms read exactly these metrics (tests/infra/test_infra_replicated_shards.py).
* The NLB: its health check of a replicated shard is a TCP connect to the order port, which must
  succeed on the primary only.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from hotpath.deploy.cloudwatch_bridge import metric_data, parse_exposition, replication_metric_data
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV
from tests.integration.hotpath.test_failover import (
    TABLE,
    TTL_MS,
    first_accepted,
    lease_of,
    lease_table,
    wait_for,
)

pytestmark = pytest.mark.integration


def start(data_dir: Path, name: str, endpoint: str) -> NodeProcess:
    return NodeProcess.start(
        data_dir,
        *("--shard", "M", "--lease-table", TABLE, "--node-id", name, "--ack-after", "replica"),
        *("--replication-port", "0", "--lease-ttl-ms", str(TTL_MS), "--metrics-port", "0"),
        *("--replica-timeout-ms", "1500"),
        env={**AWS_ENV, "AWS_ENDPOINT_URL": endpoint},
    )


def tcp_health_check(port: int) -> bool:
    """What the NLB's TCP health check does: open a connection to the order port, then close it."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


class Bridge:
    """The bridge's loop for one node, one scrape at a time (its state: the previous epoch)."""

    def __init__(self, node: NodeProcess) -> None:
        self.url = f"http://127.0.0.1:{node.metrics_port}/metrics"
        self.epoch: float | None = None

    def scrape(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=5) as answer:  # noqa: S310 - loopback
            samples = parse_exposition(answer.read().decode())
        data, _ = metric_data(samples, None, 10.0, "dev")
        replication, self.epoch = replication_metric_data(samples, self.epoch, "dev")
        assert all(d["Dimensions"] == [{"Name": "Environment", "Value": "dev"}] for d in replication)
        return {d["MetricName"]: d["Value"] for d in data + replication}


def test_the_bridge_reports_a_pair_in_sync_and_the_takeover_after_the_primary_dies(
    tmp_path: Path, moto_endpoint: str
) -> None:
    lease_table(moto_endpoint)
    # Both stopped by their ids whatever happens (NodeProcess's exit kills its process group).
    with (
        start(tmp_path / "p", "p", moto_endpoint) as primary,
        start(tmp_path / "s", "s", moto_endpoint) as standby,
    ):
        wait_for(lambda: lease_of(moto_endpoint, "M")["in_sync"], "the standby in sync")
        on_primary, on_standby = Bridge(primary), Bridge(standby)
        wait_for(lambda: on_primary.scrape().get("ReplicationConnected") == 1.0, "the link reported")
        seen = on_primary.scrape()
        assert seen["ReplicationLagRecords"] >= 0
        assert seen["LeaseEpoch"] == lease_of(moto_endpoint, "M")["epoch"]
        assert seen["LeaseEpochChanges"] == 0.0  # no takeover between two scrapes
        # The standby's follower process reports its counters every STATS_INTERVAL (1 s).
        wait_for(lambda: "ReplicaChecksumMismatches" in on_standby.scrape(), "the follower's counters")
        before = on_standby.scrape()
        assert "ReplicationConnected" not in before  # a standby has no standby
        assert before["ReplicaChecksumMismatches"] == 0.0
        epoch = lease_of(moto_endpoint, "M")["epoch"]
        assert (tcp_health_check(primary.port), tcp_health_check(standby.port)) == (True, False)

        primary.kill()
        first_accepted(standby.port, time.monotonic() + 20)
        assert tcp_health_check(standby.port)  # the NLB's new healthy target
        after = on_standby.scrape()
        assert lease_of(moto_endpoint, "M")["holder"] == "s"
        assert after["LeaseEpoch"] == epoch + 1
        assert after["LeaseEpochChanges"] == 1.0  # the takeover alarm's metric
        assert after["ReplicationConnected"] == 0.0  # alone: the no-standby alarm's metric
        assert on_standby.scrape()["LeaseEpochChanges"] == 0.0
