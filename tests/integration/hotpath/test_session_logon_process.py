"""The node process on loopback with session keys from a file: who may connect and what they may send."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.client import HotpathClient, HotpathProtocolError, close_pooled_connections
from meridian.domain import Side
from meridian.protocol import (
    Ack,
    Admin,
    AdminAction,
    Cancel,
    Flag,
    Logon,
    LogonAck,
    LogonChallenge,
    NewOrder,
    ProtocolReject,
    ProtocolRejectCode,
    SessionRole,
    encode,
)
from meridian.session_auth import new_key, write_key_file
from meridian_hotpath.process import NodeProcess
from tests.unit.hotpath.node_thread import RawConnection

pytestmark = pytest.mark.integration

ORDERS = new_key("orders", SessionRole.ORDERS)
ADMIN = new_key("admin", SessionRole.ADMIN)
ALICE = new_key("alice", SessionRole.ACCOUNT, "alice")


def refused(connection: RawConnection, request_id: int, code: ProtocolRejectCode) -> None:
    assert connection.read_frames(1) == [(ProtocolReject(request_id, code), Flag.LAST)]
    assert connection.at_eof()


def test_the_node_refuses_who_may_not_and_serves_who_may(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    write_key_file(keys, [ORDERS, ADMIN, ALICE])
    try:
        with NodeProcess.start(tmp_path / "node", "--auth-keys-file", str(keys)) as node:
            # Unauthenticated: the first frame is an order, not a logon.
            anonymous = RawConnection(node.port)
            assert isinstance(anonymous.read_frames(1)[0][0], LogonChallenge)
            anonymous.send(NewOrder(1, "c1", "bob", "AAPL", 1, 1, 1, 0, 1, 19000))
            refused(anonymous, 1, ProtocolRejectCode.NOT_LOGGED_ON)
            # A wrong HMAC.
            forger = RawConnection(node.port)
            [(challenge, _)] = forger.read_frames(1)
            assert isinstance(challenge, LogonChallenge)
            wrong = new_key("orders", SessionRole.ORDERS).mac(bytes.fromhex(challenge.nonce))
            forger.send_bytes(encode(Logon(2, "orders", wrong)))
            refused(forger, 2, ProtocolRejectCode.LOGON_FAILED)
            # An admin frame from an orders session.
            trader = HotpathClient(node.host, node.port, credential=ORDERS)
            assert isinstance(trader.submit("c2", "bob", "AAPL", Side.BUY, 1, 19000).messages[0], Ack)
            with pytest.raises(HotpathProtocolError) as caught:
                trader.exchange(Admin(0, "", AdminAction.HALT))
            assert caught.value.code == ProtocolRejectCode.NOT_PERMITTED
            # A frame for another account from an account session.
            alice = HotpathClient(node.host, node.port, credential=ALICE)
            ack = alice.submit("c3", "alice", "AAPL", Side.SELL, 1, 19100).messages[0]
            assert isinstance(ack, Ack)
            with pytest.raises(HotpathProtocolError) as caught:
                alice.exchange(Cancel(0, "bob", "AAPL", 1))
            assert caught.value.code == ProtocolRejectCode.WRONG_ACCOUNT
            # The admin session: halt and a snapshot, which has both accepted orders and nothing else.
            operator = HotpathClient(node.host, node.port, credential=ADMIN)
            assert operator.exchange(Admin(0, "MSFT", AdminAction.HALT)).messages[0].seq == 3  # type: ignore[union-attr]
            assert operator.snapshot().seq == 3
            # The right logon by hand: the ack names the role and the account.
            by_hand = RawConnection(node.port)
            [(challenge, _)] = by_hand.read_frames(1)
            assert isinstance(challenge, LogonChallenge)
            by_hand.send(Logon(4, "alice", ALICE.mac(bytes.fromhex(challenge.nonce))))
            assert by_hand.read_frames(1) == [(LogonAck(4, SessionRole.ACCOUNT, "alice"), Flag.LAST)]
            by_hand.close()
    finally:
        close_pooled_connections()


def test_serve_needs_keys_or_an_explicit_no_auth(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    command = [sys.executable, "-m", "meridian_hotpath", "serve", "--data-dir", str(tmp_path), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--auth-keys-file, --auth-secret-arns, --no-auth" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"key_id": "k", "role": "orders", "secret": "short"}')
    result = subprocess.run(
        [*command, "--auth-keys-file", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "session keys: key k: secret must be at least 32 characters" in result.stderr
