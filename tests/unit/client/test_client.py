"""HotpathClient against a scripted stub node: answers, pooling, errors and idempotent resend."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from meridian.client import (
    POOL,
    HotpathClient,
    HotpathConnectionLostError,
    HotpathError,
    HotpathOutcomeUnknownError,
    HotpathProtocolError,
    HotpathTimeoutError,
    HotpathUnavailable,
)
from meridian.domain import Side
from meridian.protocol import (
    Ack,
    Cancel,
    CancelAck,
    Fill,
    Flag,
    Heartbeat,
    Message,
    NewOrder,
    ProtocolReject,
    Snapshot,
    SnapshotRequest,
)
from tests.unit.client.stub_node import CLOSE, Script, StubNode, last

StubFactory = Callable[[Script], StubNode]


def ack_for(order: NewOrder, seq: int = 1) -> Ack:
    return Ack(order.request_id, seq, 7, order.client_order_id, order.account, order.symbol, order.side, 1,
               order.quantity, order.quantity, 0, order.price)  # fmt: skip


def echo(message: Message, index: int) -> list[tuple[Message, int]] | str | None:
    if isinstance(message, NewOrder):
        fill = Fill(
            message.request_id, 1, 1, message.symbol, message.price, 1, 1, 7, 3, "a", "b", "x", "y", 0, 0
        )
        return [(ack_for(message), 0), (fill, Flag.LAST)]
    if isinstance(message, Heartbeat):
        return last(message)
    if isinstance(message, SnapshotRequest):
        return last(Snapshot(message.request_id, 42, 99))
    if isinstance(message, Cancel):
        return last(
            CancelAck(message.request_id, 2, message.order_id, "c", message.account, message.symbol, 1, 5)
        )
    return None


def client(stub: StubNode, timeout: float = 2.0) -> HotpathClient:
    return HotpathClient("127.0.0.1", stub.port, timeout=timeout)


def test_request_collects_every_frame_up_to_last(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    answer = client(stub).submit("c1", "acct", "AAPL", Side.BUY, 10, 19000)
    assert [type(m) for m in answer.messages] == [Ack, Fill]
    assert not answer.duplicate
    assert not answer.resent
    assert all(m.request_id == stub.received[0].request_id for m in answer.messages)


def test_request_ids_are_unique_and_connections_are_reused(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    first, second = client(stub), client(stub)  # e.g. two Lambda invocations in one container
    for _ in range(3):
        first.heartbeat()
        second.heartbeat()
    ids = [m.request_id for m in stub.received]
    assert len(set(ids)) == 6
    assert stub.connections == 1


def test_conveniences(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    node = client(stub)
    assert node.snapshot() == Snapshot(stub.received[-1].request_id, 42, 99)
    assert isinstance(node.heartbeat(), Heartbeat)
    cancelled = node.cancel("acct", "AAPL", 7).messages
    assert isinstance(cancelled[0], CancelAck)
    assert isinstance(stub.received[-1], Cancel)


def test_tcp_nodelay_is_set(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    client(stub).heartbeat()
    connection = POOL.acquire(("127.0.0.1", stub.port), 1.0)
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    POOL.release(connection)


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as held:
        # Bound and never listening: a connection to it is refused, and while it is held no other
        # process (another test worker) can take the port, as one could after a probe closed.
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(HotpathUnavailable, match="cannot connect"):
            HotpathClient("127.0.0.1", port).heartbeat()


def test_no_answer_in_time_is_a_timeout_and_the_connection_is_not_reused(stub_factory: StubFactory) -> None:
    stub = stub_factory(lambda message, index: None if index == 0 else echo(message, index))
    with pytest.raises(HotpathTimeoutError) as caught:
        client(stub, timeout=0.2).heartbeat()
    assert isinstance(caught.value, HotpathUnavailable)  # the API answers 503 for both
    client(stub).heartbeat()  # a fresh connection: the late answer of the first cannot be mistaken
    assert stub.connections == 2


def test_new_order_is_resent_once_with_the_same_client_order_id(stub_factory: StubFactory) -> None:
    def breaks_then_duplicate(message: Message, index: int) -> list[tuple[Message, int]] | str | None:
        assert isinstance(message, NewOrder)
        if index == 0:
            return CLOSE  # the node took the order, then the connection broke before the answer
        return last(ack_for(message), Flag.DUPLICATE)

    stub = stub_factory(breaks_then_duplicate)
    answer = client(stub).submit("c-42", "acct", "AAPL", Side.BUY, 10, 19000)
    assert answer.resent
    assert answer.duplicate
    orders = [m for m in stub.received if isinstance(m, NewOrder)]
    assert [o.client_order_id for o in orders] == ["c-42", "c-42"]
    assert orders[0].request_id != orders[1].request_id
    assert stub.connections == 2


def test_new_order_is_resent_only_once(stub_factory: StubFactory) -> None:
    stub = stub_factory(lambda message, index: CLOSE)
    with pytest.raises(HotpathConnectionLostError):
        client(stub).submit("c-1", "acct", "AAPL", Side.SELL, 1, 19000)
    assert len(stub.received) == 2


def test_cancel_is_not_resent_when_the_connection_breaks(stub_factory: StubFactory) -> None:
    stub = stub_factory(lambda message, index: CLOSE)
    with pytest.raises(HotpathConnectionLostError):
        client(stub).cancel("acct", "AAPL", 7)
    assert len(stub.received) == 1


def test_protocol_reject_raises_with_its_code(stub_factory: StubFactory) -> None:
    stub = stub_factory(lambda message, index: last(ProtocolReject(message.request_id, 5)))
    with pytest.raises(HotpathProtocolError) as caught:
        client(stub).heartbeat()
    assert caught.value.code == 5


def test_an_undecodable_answer_is_an_unknown_outcome_not_a_refusal(stub_factory: StubFactory) -> None:
    garbage = (40).to_bytes(4, "little") + bytes([9, 99]) + bytes(38)  # a frame of no known version
    stub = stub_factory(lambda message, index: garbage if index == 0 else echo(message, index))
    with pytest.raises(HotpathOutcomeUnknownError, match="may have been done") as caught:
        client(stub).submit("c-9", "acct", "AAPL", Side.BUY, 1, 19000)
    assert not isinstance(caught.value, (HotpathProtocolError, HotpathUnavailable))
    assert len(stub.received) == 1  # not re-sent blindly: the caller resolves it by client order id
    assert isinstance(client(stub).heartbeat(), Heartbeat)  # on a fresh connection
    assert stub.connections == 2


def test_a_lost_connection_is_an_unknown_outcome_too() -> None:
    assert issubclass(HotpathConnectionLostError, HotpathOutcomeUnknownError)
    assert not issubclass(HotpathOutcomeUnknownError, HotpathProtocolError)
    assert issubclass(HotpathOutcomeUnknownError, HotpathError)


def test_a_pooled_connection_the_node_closed_is_replaced_before_sending(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    node = client(stub)
    node.heartbeat()
    # E.g. the load balancer's idle timeout while the Lambda was frozen. On loopback the FIN is
    # queued on this side before shutdown() returns.
    stub.drop_connections()
    node.cancel("acct", "AAPL", 7)  # not idempotent: it must not be sent into the dead socket
    assert stub.connections == 2
    assert sum(isinstance(m, Cancel) for m in stub.received) == 1


def test_pipeline_matches_answers_to_requests(stub_factory: StubFactory) -> None:
    stub = stub_factory(echo)
    orders = [NewOrder(0, f"p{n}", "acct", "AAPL", 1, 1, 1, 0, 1, 19000 + n) for n in range(2000)]
    answers = client(stub).pipeline(orders, window=64)
    assert len(answers) == 2000
    for order, answer in zip(orders, answers, strict=True):
        first = answer.messages[0]
        assert isinstance(first, Ack)
        assert (first.client_order_id, first.price) == (order.client_order_id, order.price)
    assert stub.connections == 1
