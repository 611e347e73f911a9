"""Connection limits of the node: cap, idle timeout, partial-frame timeout, TCP keepalive."""

from __future__ import annotations

import socket

from meridian.protocol import Flag, Heartbeat, NewOrder, ProtocolReject, ProtocolRejectCode, encode
from meridian_hotpath.server import ClientConnection, ConnectionLimits
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import NodeThread, RawConnection

SECOND_NS = 1_000_000_000


def order(n: int) -> NewOrder:
    return NewOrder(n, f"c{n}", "acct", "AAPL", 1, 1, 1, 0, 1, 19000)


def only_connection(node: NodeThread) -> ClientConnection:
    node.wait_until(lambda: len(node.node.server.connections) == 1)
    (connection,) = node.node.server.connections
    return connection


def sweep_at(node: NodeThread, now_ns: int) -> None:
    node.call(lambda: node.node.server.sweep(now_ns))


def rejects(node: NodeThread, code: ProtocolRejectCode) -> float:
    value: float = node.node.metrics.protocol_rejects.labels(code.name.lower())._value.get()
    return value


def test_connections_over_the_cap_are_refused_with_a_reject(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(max_connections=2, idle_timeout=0, partial_frame_timeout=0))
    first, second = RawConnection(node.port), RawConnection(node.port)
    node.wait_until(lambda: len(node.node.server.connections) == 2)
    third = RawConnection(node.port)
    assert third.read_frames(1) == [(ProtocolReject(0, ProtocolRejectCode.TOO_MANY_CONNECTIONS), Flag.LAST)]
    assert third.at_eof()
    first.send(Heartbeat(1, 5))  # the two inside the cap are served
    assert first.read_frames(1)[0][0] == Heartbeat(1, 5)
    second.sock.close()
    node.wait_until(lambda: len(node.node.server.connections) == 1)
    fourth = RawConnection(node.port)  # room again once one left
    fourth.send(Heartbeat(2, 6))
    assert fourth.read_frames(1)[0][0] == Heartbeat(2, 6)
    assert rejects(node, ProtocolRejectCode.TOO_MANY_CONNECTIONS) == 1


def test_a_silent_connection_is_closed_after_the_idle_timeout(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(idle_timeout=30, partial_frame_timeout=0))
    quiet = RawConnection(node.port)
    connection = only_connection(node)
    opened = connection.last_received_ns
    sweep_at(node, opened + 29 * SECOND_NS)
    quiet.send(Heartbeat(1, 1))  # still open: a heartbeat counts as activity
    assert quiet.read_frames(1)[0][0] == Heartbeat(1, 1)
    node.wait_until(lambda: connection.last_received_ns > opened)
    beat = connection.last_received_ns
    sweep_at(node, beat + 29 * SECOND_NS)
    assert not connection.closing
    sweep_at(node, beat + 31 * SECOND_NS)
    assert quiet.read_frames(1) == [(ProtocolReject(0, ProtocolRejectCode.IDLE_TIMEOUT), Flag.LAST)]
    assert quiet.at_eof()


def test_the_sweeper_runs_by_itself(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(idle_timeout=0.2, partial_frame_timeout=0))
    quiet = RawConnection(node.port)
    assert quiet.read_frames(1) == [(ProtocolReject(0, ProtocolRejectCode.IDLE_TIMEOUT), Flag.LAST)]
    assert quiet.at_eof()


def test_a_connection_owed_answers_is_not_idle(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(idle_timeout=30, partial_frame_timeout=0))
    client = RawConnection(node.port)
    connection = only_connection(node)
    node.call(lambda: setattr(connection, "owed", 1))  # as while its orders wait for the disk
    sweep_at(node, connection.last_received_ns + 60 * SECOND_NS)
    assert not connection.closing
    node.call(lambda: setattr(connection, "owed", 0))
    client.send(Heartbeat(3, 3))
    assert client.read_frames(1)[0][0] == Heartbeat(3, 3)


def test_a_partial_frame_held_too_long_closes_the_connection(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(idle_timeout=0, partial_frame_timeout=5))
    client = RawConnection(node.port)
    connection = only_connection(node)
    first, second = encode(order(1)), encode(order(2))
    client.send_bytes(first[:20])
    node.wait_until(lambda: connection.partial_since_ns > 0)
    started = connection.partial_since_ns
    client.send_bytes(first[20:40])  # the same frame, still incomplete: its clock keeps running
    node.wait_until(lambda: connection.last_received_ns > started)
    assert connection.partial_since_ns == started
    client.send_bytes(first[40:] + second[:10])  # frame 1 completes, frame 2 starts: a new clock
    assert client.read_frames(1)[0][0].request_id == 1
    node.wait_until(lambda: connection.partial_since_ns > started)
    restarted = connection.partial_since_ns
    sweep_at(node, restarted + 4 * SECOND_NS)
    assert not connection.closing
    sweep_at(node, restarted + 6 * SECOND_NS)
    assert client.read_frames(1) == [(ProtocolReject(0, ProtocolRejectCode.PARTIAL_FRAME_TIMEOUT), Flag.LAST)]
    assert client.at_eof()
    assert node.call(lambda: node.node.node.engine.seq) == 1  # the partial frame never reached it


def test_a_length_beyond_the_largest_frame_is_refused_at_once(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(idle_timeout=0, partial_frame_timeout=0))
    client = RawConnection(node.port)
    client.send_bytes((100_000).to_bytes(4, "little") + b"\x01\x01")  # never a whole frame to wait for
    assert client.read_frames(1) == [(ProtocolReject(0, ProtocolRejectCode.BAD_LENGTH), Flag.LAST)]
    assert client.at_eof()


def test_accepted_sockets_use_tcp_keepalive(start_node: StartNode) -> None:
    node = start_node(limits=ConnectionLimits(keepalive_idle=17, keepalive_interval=4, keepalive_probes=5))
    client = RawConnection(node.port)
    connection = only_connection(node)

    def options() -> tuple[int, int, int, int]:
        assert connection._transport is not None
        sock = connection._transport.get_extra_info("socket")
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )

    assert node.call(options) == (1, 17, 4, 5)
    client.close()
