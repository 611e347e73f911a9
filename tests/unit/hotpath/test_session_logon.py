"""The matching port's session logon: challenge, HMAC, roles and accounts, checked before the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.client import HotpathClient, HotpathProtocolError
from meridian.domain import Side
from meridian.protocol import (
    Ack,
    Admin,
    AdminAck,
    AdminAction,
    Cancel,
    Flag,
    Heartbeat,
    Logon,
    LogonAck,
    LogonChallenge,
    NewOrder,
    ProtocolReject,
    ProtocolRejectCode,
    SessionRole,
    Snapshot,
    SnapshotRequest,
)
from meridian.session_auth import SessionKey, new_key
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import read_journal
from meridian_hotpath.recovery import journal_dir
from meridian_hotpath.server import ConnectionLimits
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.node_thread import NodeThread, RawConnection

ORDERS = new_key("orders-1", SessionRole.ORDERS)
ADMIN = new_key("admin-1", SessionRole.ADMIN)
ALICE = new_key("alice-1", SessionRole.ACCOUNT, "alice")
KEYS = [ORDERS, ADMIN, ALICE]


def order(n: int, account: str = "alice") -> NewOrder:
    return NewOrder(n, f"c{n}", account, "AAPL", 1, 1, 1, 0, 1, 19000)


def start(start_node: StartNode) -> NodeThread:
    return start_node(session_keys=lambda: KEYS, limits=ConnectionLimits(snapshot_interval=0))


def logged_on(node: NodeThread, key: SessionKey) -> RawConnection:
    connection = RawConnection(node.port)
    [(challenge, _)] = connection.read_frames(1)
    assert isinstance(challenge, LogonChallenge)
    connection.send(Logon(9, key.key_id, key.mac(bytes.fromhex(challenge.nonce))))
    [(ack, flags)] = connection.read_frames(1)
    assert (ack, flags) == (LogonAck(9, key.role, key.account), Flag.LAST)
    return connection


def refused(connection: RawConnection, request_id: int, code: ProtocolRejectCode) -> None:
    assert connection.read_frames(1) == [(ProtocolReject(request_id, code), Flag.LAST)]
    assert connection.at_eof()


def seq(node: NodeThread) -> int:
    value: int = node.call(lambda: node.node.node.engine.seq)
    return value


def test_a_frame_before_the_logon_is_refused_and_never_reaches_the_engine(start_node: StartNode) -> None:
    node = start(start_node)
    connection = RawConnection(node.port)
    assert isinstance(connection.read_frames(1)[0][0], LogonChallenge)
    connection.send(order(1), Admin(2, "", AdminAction.HALT))
    refused(connection, 1, ProtocolRejectCode.NOT_LOGGED_ON)
    assert seq(node) == 0


def test_a_wrong_hmac_or_an_unknown_key_is_refused(start_node: StartNode) -> None:
    node = start(start_node)
    wrong = RawConnection(node.port)
    [(challenge, _)] = wrong.read_frames(1)
    assert isinstance(challenge, LogonChallenge)
    forged = new_key("orders-1", SessionRole.ORDERS)  # the right id, another secret
    wrong.send(Logon(3, "orders-1", forged.mac(bytes.fromhex(challenge.nonce))), order(4))
    refused(wrong, 3, ProtocolRejectCode.LOGON_FAILED)
    unknown = RawConnection(node.port)
    unknown.read_frames(1)
    unknown.send(Logon(5, "nobody", "0" * 64))
    refused(unknown, 5, ProtocolRejectCode.LOGON_FAILED)
    assert seq(node) == 0


def test_a_logon_answers_another_connections_challenge_only(start_node: StartNode) -> None:
    node = start(start_node)
    first, second = RawConnection(node.port), RawConnection(node.port)
    [(challenge, _)] = first.read_frames(1)
    second.read_frames(1)
    assert isinstance(challenge, LogonChallenge)
    second.send(Logon(6, ORDERS.key_id, ORDERS.mac(bytes.fromhex(challenge.nonce))))  # replayed
    refused(second, 6, ProtocolRejectCode.LOGON_FAILED)


def test_an_orders_session_trades_for_any_account_but_sends_no_admin_frame(
    start_node: StartNode, tmp_path: Path
) -> None:
    node = start(start_node)
    connection = logged_on(node, ORDERS)
    connection.send(order(1, "alice"), order(2, "bob"), Heartbeat(3, 1))
    answers = sorted(connection.read_frames(3), key=lambda frame: frame[0].request_id)
    assert [type(m) for m, _ in answers] == [Ack, Ack, Heartbeat]  # the heartbeat's goes first
    connection.send(Admin(4, "", AdminAction.HALT))
    refused(connection, 4, ProtocolRejectCode.NOT_PERMITTED)
    snapshot = logged_on(node, ORDERS)
    snapshot.send(SnapshotRequest(5, ""))
    refused(snapshot, 5, ProtocolRejectCode.NOT_PERMITTED)
    assert seq(node) == 2
    assert [r.request() for r in read_journal(journal_dir(tmp_path / "node"))] == [
        order(1, "alice"),
        order(2, "bob"),
    ]


def test_an_admin_session_halts_and_snapshots_but_places_no_order(start_node: StartNode) -> None:
    node = start(start_node)
    connection = logged_on(node, ADMIN)
    connection.send(Admin(1, "AAPL", AdminAction.HALT), SnapshotRequest(2, ""))
    answers = [m for m, _ in connection.read_frames(2)]
    assert isinstance(answers[0], AdminAck)
    assert isinstance(answers[1], Snapshot)
    connection.send(order(3, "alice"))
    refused(connection, 3, ProtocolRejectCode.NOT_PERMITTED)
    assert seq(node) == 1


def test_an_account_session_trades_only_for_its_account(start_node: StartNode) -> None:
    node = start(start_node)
    connection = logged_on(node, ALICE)
    connection.send(order(1, "alice"))
    [(ack, _)] = connection.read_frames(1)
    assert isinstance(ack, Ack)
    connection.send(Cancel(2, "bob", "AAPL", ack.order_id))
    refused(connection, 2, ProtocolRejectCode.WRONG_ACCOUNT)
    other = logged_on(node, ALICE)
    other.send(order(3, "alicex"))  # a longer name that starts with the same letters
    refused(other, 3, ProtocolRejectCode.WRONG_ACCOUNT)
    assert seq(node) == 1


def test_the_client_logs_on_with_its_key_and_pools_per_key(start_node: StartNode) -> None:
    node = start(start_node)
    trader = HotpathClient("127.0.0.1", node.port, credential=ORDERS)
    assert isinstance(trader.submit("c1", "bob", "AAPL", Side.BUY, 1, 19000).messages[0], Ack)
    operator = HotpathClient("127.0.0.1", node.port, credential=ADMIN)
    assert operator.snapshot().seq == 1
    assert isinstance(trader.heartbeat(), Heartbeat)  # the trader's pooled session, not the admin's
    with pytest.raises(HotpathProtocolError) as caught:
        trader.snapshot()
    assert caught.value.code == ProtocolRejectCode.NOT_PERMITTED
    with pytest.raises(HotpathProtocolError) as caught:
        HotpathClient("127.0.0.1", node.port).heartbeat()  # no key: the first request is refused
    assert caught.value.code == ProtocolRejectCode.NOT_LOGGED_ON
    impostor = new_key("admin-1", SessionRole.ADMIN)
    with pytest.raises(HotpathProtocolError) as caught:
        HotpathClient("127.0.0.1", node.port, credential=impostor).heartbeat()
    assert caught.value.code == ProtocolRejectCode.LOGON_FAILED


def test_a_logon_split_across_reads_is_put_together(start_node: StartNode) -> None:
    node = start(start_node)
    connection = RawConnection(node.port)
    [(challenge, _)] = connection.read_frames(1)
    assert isinstance(challenge, LogonChallenge)
    from meridian.protocol import encode  # noqa: PLC0415

    frame = encode(Logon(1, ORDERS.key_id, ORDERS.mac(bytes.fromhex(challenge.nonce)))) + encode(order(2))
    connection.send_bytes(frame[:3])
    connection.send_bytes(frame[3:50])
    connection.send_bytes(frame[50:])
    assert [type(m) for m, _ in connection.read_frames(2)] == [LogonAck, Ack]


def test_the_native_core_checks_the_session_per_frame() -> None:
    from meridian.domain import DEFAULT_INSTRUMENTS  # noqa: PLC0415
    from meridian.protocol import encode  # noqa: PLC0415
    from meridian.session_auth import PERM_ADMIN, PERM_TRADE  # noqa: PLC0415
    from meridian_hotpath.engine.native import FEED_DONE, FEED_PROTOCOL_ERROR  # noqa: PLC0415

    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    alice = b"alice".ljust(16, b"\0")
    data = encode(order(1, "alice")) + encode(order(2, "bob"))
    offset, _, _, changes, stop, request_id, detail = engine.feed(data, 0, PERM_TRADE, alice)
    assert (changes, stop, request_id, detail) == (
        1,
        FEED_PROTOCOL_ERROR,
        2,
        ProtocolRejectCode.WRONG_ACCOUNT,
    )
    assert offset == len(encode(order(1)))
    halt = encode(Admin(3, "", AdminAction.HALT))
    assert engine.feed(halt, 0, PERM_TRADE)[4:] == (FEED_PROTOCOL_ERROR, 3, ProtocolRejectCode.NOT_PERMITTED)
    assert engine.feed(encode(order(4, "bob")), 0, PERM_ADMIN)[6] == ProtocolRejectCode.NOT_PERMITTED
    assert engine.feed(encode(order(5, "bob")), 0, PERM_TRADE)[4] == FEED_DONE
    assert engine.seq == 2
    with pytest.raises(ValueError, match="16 bytes"):
        engine.feed(data, 0, PERM_TRADE, b"alice")
