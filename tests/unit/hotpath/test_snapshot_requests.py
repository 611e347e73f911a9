"""SNAPSHOT_REQUEST limits: one in-flight snapshot shared, owed answers counted, a rate per connection."""

from __future__ import annotations

import asyncio

from meridian.protocol import Flag, ProtocolReject, ProtocolRejectCode, Snapshot, SnapshotRequest
from meridian_hotpath.server import ConnectionLimits
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import NodeThread, RawConnection

Written = asyncio.Future[tuple[int, int, dict[str, int]]]


def hold_snapshots(node: NodeThread) -> list[Written]:
    """Make the follower's snapshots wait until the test resolves them; returns those asked for."""
    asked: list[Written] = []

    def snapshot(min_seq: int) -> Written:
        future: Written = asyncio.get_running_loop().create_future()
        asked.append(future)
        return future

    node.call(lambda: setattr(node.node.node.follower, "snapshot", snapshot))
    return asked


def test_waiting_snapshot_requests_count_as_owed_and_share_one_snapshot(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(snapshot_interval=0, idle_timeout=0, partial_frame_timeout=0))
    asked = hold_snapshots(node)
    first, second = RawConnection(node.port), RawConnection(node.port)
    first.send(SnapshotRequest(1, ""))
    second.send(SnapshotRequest(2, ""))
    connections = node.node.server.connections
    node.wait_until(lambda: len(connections) == 2 and all(c.owed == 1 for c in connections))
    assert len(asked) == 1  # the second request shares the snapshot in flight
    node.call(lambda: asked[0].set_result((0, 77, {})))
    assert first.read_frames(1) == [(Snapshot(1, 0, 77), Flag.LAST)]
    assert second.read_frames(1) == [(Snapshot(2, 0, 77), Flag.LAST)]
    node.wait_until(lambda: all(c.owed == 0 for c in connections))


def test_a_client_that_piles_up_snapshot_requests_stops_being_read(start_node: StartNode) -> None:
    node = start_node(
        max_owed=3, limits=ConnectionLimits(snapshot_interval=0, idle_timeout=0, partial_frame_timeout=0)
    )
    asked = hold_snapshots(node)
    client = RawConnection(node.port)
    client.send(*(SnapshotRequest(n, "") for n in range(1, 4)))
    node.wait_until(lambda: len(node.node.server.connections) == 1)
    (connection,) = node.node.server.connections
    node.wait_until(lambda: connection.reading_paused)
    assert connection.owed == 3
    client.send(SnapshotRequest(4, ""), SnapshotRequest(5, ""))  # waits in the socket meanwhile
    assert node.call(lambda: connection.owed) == 3
    node.call(lambda: asked[0].set_result((0, 5, {})))
    assert {m.request_id for m, _ in client.read_frames(3)} == {1, 2, 3}
    node.wait_until(lambda: len(asked) == 2)  # read again: the later two share a new snapshot
    node.call(lambda: asked[1].set_result((0, 6, {})))
    assert {m.request_id for m, _ in client.read_frames(2)} == {4, 5}
    node.wait_until(lambda: connection.owed == 0 and not connection.reading_paused)


def test_snapshot_requests_beyond_the_burst_and_rate_are_refused(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(snapshot_interval=3600, snapshot_burst=2))
    client = RawConnection(node.port)
    client.send(SnapshotRequest(1, ""), SnapshotRequest(9, "AAPL"), SnapshotRequest(2, ""))
    frames = sorted(client.read_frames(3), key=lambda frame: frame[0].request_id)
    assert [type(m) for m, _ in frames[:2]] == [Snapshot, ProtocolReject]
    assert isinstance(frames[2][0], Snapshot)  # the burst: two at once
    assert frames[1] == (ProtocolReject(2, ProtocolRejectCode.SNAPSHOT_RATE_LIMITED), Flag.LAST)
    assert client.at_eof()
    other = RawConnection(node.port)  # the rate is per connection
    other.send(SnapshotRequest(3, ""))
    assert isinstance(other.read_frames(1)[0][0], Snapshot)
