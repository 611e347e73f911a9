"""A replicated shard publishes only trades that survive a takeover.

The primary's follower publishes the trades of what is durable on the primary's disk. If it went
further than its standby holds and the primary then died, the standby would take over without those
records: the drop copy (so the ledger) would hold trades the shard's history does not, and the new
primary would give their trade ids to other trades. Here the standby stops acknowledging (SIGSTOP,
well within its replica timeout, so the lease still says it is in sync) while trading goes on at the
primary (its answers wait for the standby; its own disk syncs the records): nothing the standby has
not acknowledged may be published. Once it acknowledges, they are, without another order to wake
the follower. Then the primary dies: every trade in the drop copy is one the new primary holds, once
per id, with the same content every time it was sent.
"""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import OrderType, Side, TimeInForce
from meridian.executions import execution_id
from meridian.protocol import Fill, NewOrder, encode
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV, kinesis_client, read_stream
from tests.integration.hotpath.test_failover import (
    TABLE,
    first_accepted,
    lease_of,
    lease_table,
    wait_for,
)

pytestmark = pytest.mark.integration

STREAM = "meridian-executions-failover"
TTL_MS = 600


def start(data_dir: Path, name: str, endpoint: str, shard: str = "P") -> NodeProcess:
    """A node of ``shard``, whose drop copy goes to the stream of that shard (moto's state is the
    test process's: one stream per test)."""
    return NodeProcess.start(
        data_dir,
        *("--shard", shard, "--lease-table", TABLE, "--node-id", name, "--ack-after", "replica"),
        *("--replication-port", "0", "--lease-ttl-ms", str(TTL_MS), "--metrics-port", "0"),
        *("--replica-timeout-ms", "60000"),  # a stalled standby stays "in sync" for the whole test
        *("--executions-stream", f"{STREAM}-{shard}", "--node-number", "3"),
        env={**AWS_ENV, "AWS_ENDPOINT_URL": endpoint},
    )


def crossing_orders(prefix: str, count: int) -> list[NewOrder]:
    """``count`` pairs of a resting sell and a buy that trades with it, from two accounts."""
    orders: list[NewOrder] = []
    for n in range(count):
        for side, account in ((Side.SELL, "SELLER"), (Side.BUY, "BUYER")):
            coid = f"{prefix}-{n}-{side.name}"
            orders.append(
                NewOrder(
                    len(orders) + 1,
                    coid,
                    account,
                    "AAPL",
                    side,
                    OrderType.LIMIT,
                    TimeInForce.GTC,
                    0,
                    1,
                    19_000,
                )
            )
    return orders


def published(kinesis: Any, shard: str = "P") -> list[dict[str, Any]]:
    return read_stream(kinesis, f"{STREAM}-{shard}")


def trades_made(metrics_port: int | None) -> int:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return int(
        sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("meridian_trades_total"))
    )


def test_trades_the_standby_never_held_are_never_published(tmp_path: Path, moto_endpoint: str) -> None:
    lease_table(moto_endpoint)
    kinesis = kinesis_client(moto_endpoint)
    kinesis.create_stream(StreamName=f"{STREAM}-P", ShardCount=1)
    primary = start(tmp_path / "p", "p", moto_endpoint)
    standby = start(tmp_path / "s", "s", moto_endpoint)
    try:
        wait_for(lambda: lease_of(moto_endpoint, "P")["in_sync"], "the standby in sync")
        answers = HotpathClient("127.0.0.1", primary.port).pipeline(crossing_orders("before", 20))
        assert sum(isinstance(m, Fill) for a in answers for m in a.messages) == 20  # the standby holds them
        wait_for(lambda: len(published(kinesis)) >= 20, "the first trades published")
        standby.pause()
        unheld = socket.create_connection(("127.0.0.1", primary.port), timeout=10)
        unheld.sendall(b"".join(encode(o) for o in crossing_orders("unheld", 50)))  # synced, unanswered
        wait_for(lambda: trades_made(primary.metrics_port) >= 70, "the primary matched them")
        time.sleep(1.0)  # time enough for its follower to publish them, were it allowed to
        published_while_unheld = len(published(kinesis))
        standby.resume()  # it reads what waited and acknowledges
        wait_for(lambda: len(published(kinesis)) >= 70, "the trades published once the standby holds them")
        primary.kill()
        unheld.close()
        first_accepted(standby.port, time.monotonic() + 60)  # it took over
        answers = HotpathClient("127.0.0.1", standby.port).pipeline(crossing_orders("after", 30))
        assert sum(isinstance(m, Fill) for a in answers for m in a.messages) == 30
        made = trades_made(standby.metrics_port)
        assert made == 100
        wait_for(lambda: len({r["execution_id"] for r in published(kinesis)}) >= made, "delivery")
    finally:
        close_pooled_connections()
        for node in (primary, standby):
            node.stop()  # SIGCONT first: a paused node cannot stop
    assert published_while_unheld == 20, "trades the standby had not acknowledged were published"
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in published(kinesis):
        copies[record["execution_id"]].append(
            {k: v for k, v in record.items() if k not in ("key", "timestamp_ns")}
        )
    for execution, prints in copies.items():
        assert all(p == prints[0] for p in prints), f"{execution} names different trades: {prints}"
        assert execution == execution_id(prints[0]["trade_id"])
    assert len(copies) == made, "the drop copy holds exactly the trades of the shard's history"


def test_a_takeover_publishes_the_trades_its_dead_primary_never_delivered(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """The primary cannot deliver (its drop-copy stream does not exist yet) and dies; the standby
    held every trade. Taking over, it re-sends every trade its primary never confirmed delivered: a
    standby writes snapshots only where its primary's follower did, never one of its own (which
    would hide the undelivered trades behind it), also when its follower is a process of its own."""
    lease_table(moto_endpoint)
    kinesis = kinesis_client(moto_endpoint)
    primary = start(tmp_path / "p", "p", moto_endpoint, shard="Q")
    standby = start(tmp_path / "s", "s", moto_endpoint, shard="Q")
    try:
        wait_for(lambda: lease_of(moto_endpoint, "Q")["in_sync"], "the standby in sync")
        answers = HotpathClient("127.0.0.1", primary.port).pipeline(crossing_orders("held", 20))
        assert sum(isinstance(m, Fill) for a in answers for m in a.messages) == 20
        primary.kill()
        kinesis.create_stream(StreamName=f"{STREAM}-Q", ShardCount=1)
        first_accepted(standby.port, time.monotonic() + 60)
        made = trades_made(standby.metrics_port)
        assert made == 20
        wait_for(lambda: len({r["execution_id"] for r in published(kinesis, "Q")}) == made, "the re-sent")
    finally:
        close_pooled_connections()
        for node in (primary, standby):
            node.stop()
