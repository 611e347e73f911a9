"""Fail-stop: a node whose journal or engine fails stops answering, says so, and restarts whole.

Faults are injected at the node's two boundaries, the journal writer (a write that fails as a
disk would) and the engine (an exception after it processed a batch of frames: the native core
raises only when it runs out of memory, and then its state and the batch's answers are in doubt);
everything else is observed from outside: the wire, ``/healthz``, the exit code, and a restarted
node's state and drop copy compared with what was acknowledged. A failed fdatasync in the syncer
thread is covered by ``test_journal_sync``.

A failed node shuts down at once; its journal follower keeps it up while the drop copy delivers.
The executions sink here holds its deliveries until the test opens it, which keeps the failed
node's HTTP endpoint up long enough to read its ``/healthz``.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from meridian.client import HotpathClient
from meridian.protocol import Fill, NewOrder, Snapshot
from meridian_hotpath.node import EngineFailedError
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.publisher import InMemorySink, StreamRecord
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.datadir import fresh_engine
from tests.unit.hotpath.node_thread import WAIT, NodeThread, RawConnection

ACKNOWLEDGED = list(synthetic_flow(seed=3, count=120))


class GatedSink(InMemorySink):
    """An executions sink whose deliveries wait until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        self.gate.wait(WAIT)
        return super().put(records)


class FaultyEngine:
    """The node's engine, raising on the batch that holds one request id, after processing it."""

    def __init__(self, engine: Any, request_id: int) -> None:
        self._engine, self._marker = engine, request_id.to_bytes(8, "little")

    def feed(self, data: bytes, offset: int = 0) -> Any:
        result = self._engine.feed(data, offset)
        if self._marker in bytes(data[offset:]):
            raise MemoryError("injected: the engine raised after changing its state")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


# ---- the two injection points: the only places these tests reach inside the node -------------


def fail_journal_writes(node: NodeThread) -> None:
    """From now on every journal write fails as a disk does (EIO), before anything reaches the file."""
    journal = node.node.node.journal

    def broken(*_: Any) -> None:
        raise OSError(errno.EIO, "injected: journal write failed")

    node.call(lambda: setattr(journal, "write_records", broken))


def fail_engine_on(node: NodeThread, request_id: int) -> None:
    matching = node.node.node
    node.call(lambda: setattr(matching, "engine", FaultyEngine(matching.engine, request_id)))


# ---- what the tests observe -------------------------------------------------------------------


def healthz(node: NodeThread) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{node.node.metrics_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    return False


def fills_in(answers: list[Any]) -> list[Fill]:
    return [m for answer in answers for m in answer.messages if isinstance(m, Fill)]


def trade_ids(records: list[StreamRecord]) -> set[int]:
    return {int(record.payload["trade_id"]) for record in records}


def trade_before_the_fault(start_node: StartNode) -> tuple[NodeThread, GatedSink, set[int]]:
    """A node with a held drop copy that acknowledged ACKNOWLEDGED; the trade ids it answered."""
    sink = GatedSink()
    node = start_node(executions_sink=sink, delivery_timeout=3 * WAIT)
    answers = HotpathClient("127.0.0.1", node.port).pipeline(ACKNOWLEDGED)
    assert len(answers) == len(ACKNOWLEDGED)
    traded = {fill.trade_id for fill in fills_in(answers)}
    assert traded, "the flow trades, so the drop copy has deliveries in flight"
    return node, sink, traded


def assert_failed_and_stopped(node: NodeThread, sink: GatedSink, request: NewOrder) -> None:
    """``request`` (sent after the fault) gets no answer; the node stops, first saying why."""
    connection = RawConnection(node.port)
    connection.send(request)
    assert connection.read_answers({request.request_id}) == set()  # closed without an answer
    connection.close()
    assert refuses_connections(node.port)
    status, body = healthz(node)  # still up: its drop copy is delivering
    assert (status, body["status"]) == (503, "unavailable")
    sink.gate.set()
    node.wait_stopped()
    assert node.exit_code == 1


def assert_restart_keeps_exactly_the_acknowledged(
    start_node: StartNode, traded: set[int], acknowledged: list[Any], delivered: set[int]
) -> None:
    sink = InMemorySink()
    again = start_node(executions_sink=sink)
    reference = fresh_engine(acknowledged)
    snapshot = HotpathClient("127.0.0.1", again.port).snapshot()
    assert snapshot == Snapshot(snapshot.request_id, len(acknowledged), reference.checksum())
    # Every acknowledged trade reached the drop copy: from the failed node's follower (which goes on
    # delivering what the journal made durable) or, re-sent, from the restart's.
    again.wait_until(lambda: trade_ids(sink.records) | delivered >= traded)
    assert healthz(again)[0] == 200


def new_order(request_id: int) -> NewOrder:
    return NewOrder(request_id, f"late-{request_id}", "late", "AAPL", 1, 1, 1, 0, 1, 19000)


def test_a_journal_write_error_stops_the_node_and_a_restart_loses_nothing_acknowledged(
    start_node: StartNode,
) -> None:
    node, sink, traded = trade_before_the_fault(start_node)
    fail_journal_writes(node)
    assert_failed_and_stopped(node, sink, new_order(900_001))
    assert isinstance(node.node.failure, OSError)
    assert_restart_keeps_exactly_the_acknowledged(start_node, traded, ACKNOWLEDGED, trade_ids(sink.records))


def test_an_engine_that_raises_after_changing_its_state_stops_the_node(start_node: StartNode) -> None:
    node, sink, traded = trade_before_the_fault(start_node)
    fail_engine_on(node, 900_002)
    assert_failed_and_stopped(node, sink, new_order(900_002))
    assert isinstance(node.node.failure, EngineFailedError)
    # The batch that raised was neither answered nor journaled: the restart does not hold it.
    assert_restart_keeps_exactly_the_acknowledged(start_node, traded, ACKNOWLEDGED, trade_ids(sink.records))
