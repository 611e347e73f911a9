"""kill -9 the node while a client streams orders, restart it, and check nothing acknowledged was lost.

How the comparison works. One client streams a deterministic order flow over one connection, so
the node processes (and journals) the inputs in the order they were sent. Three prefixes of that
order matter after a crash:

    acknowledged  <=  journaled  <=  sent

* every acknowledged input is journaled (the node answers only after the batch's fdatasync);
* the journal may hold more than was acknowledged: a batch made durable just before the kill,
  whose answers never left the node;
* nothing beyond what was sent can be journaled.

So after each restart: the recovered seq R lies between the acknowledged and sent counts; the
recovered state equals a fresh engine fed the first R sent inputs (the node's Snapshot answer gives
its checksum); and every acknowledged order is still there: resending it with the same client order
id gets the existing order back flagged DUPLICATE. Those resends are journaled inputs too, and the
reference engine is fed them so that the next trial compares like with like.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.client import HotpathClient, close_pooled_connections
from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import Ack, Flag, Message, NewOrder, decode_stream, encode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import StateChange
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.process import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIALS = 24
WINDOW = 48  # requests in flight: the node commits them in batches, so kills land mid-batch too


class Streamer(threading.Thread):
    """Streams inputs until the connection dies; records what was sent and what was answered."""

    def __init__(self, port: int, flow: Iterator[StateChange]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.flow = flow
        self.sent: list[StateChange] = []
        self.answers: dict[int, Message] = {}  # request id -> first frame of its complete answer
        self.answered_in_order: list[int] = []

    def run(self) -> None:
        buffer = b""
        firsts: dict[int, Message] = {}
        in_flight = 0
        try:
            while True:
                batch = [next(self.flow) for _ in range(WINDOW - in_flight)]
                self.sent += batch  # counted as sent before the bytes leave: "sent" is an upper bound
                self.sock.sendall(b"".join(encode(request) for request in batch))
                in_flight += len(batch)
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return
                buffer += chunk
                frames, consumed = decode_stream(buffer)
                buffer = buffer[consumed:]
                for message, flags in frames:
                    firsts.setdefault(message.request_id, message)
                    if flags & Flag.LAST:
                        self.answers[message.request_id] = firsts.pop(message.request_id)
                        self.answered_in_order.append(message.request_id)
                        in_flight -= 1
        except OSError:
            return  # the node was killed
        finally:
            self.sock.close()


def feed(engine: MatchingEngine, inputs: list[StateChange], upto: int) -> None:
    for request in inputs[engine.seq : upto]:
        engine.process(request)


@pytest.mark.parametrize("ack_after", ["fsync", "async"])
def test_acknowledged_orders_survive_kill_9(tmp_path: Path, ack_after: str) -> None:
    """In both ack modes: SIGKILL loses no written data (the kernel holds it), so an order answered
    once written (async) survives a crash of the node's processes as one answered once durable."""
    rng = random.Random(20_260_101)
    data_dir = tmp_path / "node"
    args = ("--snapshot-every", "250", "--ack-after", ack_after)
    flow = synthetic_flow(seed=99, count=10**9)
    journaled: list[StateChange] = []  # what the node has processed, in order: the reference's input
    reference = MatchingEngine(DEFAULT_INSTRUMENTS)
    acked_total = 0
    durable_unanswered = 0  # inputs journaled whose answers the kill swallowed, over all trials
    started = time.monotonic()
    node = NodeProcess.start(data_dir, *args)
    try:
        for trial in range(TRIALS):
            streamer = Streamer(node.port, flow)
            streamer.start()
            time.sleep(rng.uniform(0.02, 0.3))
            node.kill()
            streamer.join(30)
            assert not streamer.is_alive()

            sent_ids = [request.request_id for request in streamer.sent]
            acked = len(streamer.answered_in_order)
            assert streamer.answered_in_order == sent_ids[:acked], "answers arrive in processing order"

            node = NodeProcess.start(data_dir, *args)
            recovered = node.seq
            assert acked_total + acked <= recovered <= len(journaled) + len(streamer.sent), trial
            durable_unanswered += recovered - acked_total - acked
            journaled += streamer.sent[: recovered - len(journaled)]
            feed(reference, journaled, recovered)

            client = HotpathClient("127.0.0.1", node.port, timeout=10)
            snapshot = client.snapshot()
            assert (snapshot.seq, snapshot.checksum) == (recovered, reference.checksum()), trial

            accepted: list[tuple[NewOrder, Ack]] = []
            for request in streamer.sent[:acked]:
                first_frame = streamer.answers[request.request_id]
                if isinstance(request, NewOrder) and isinstance(first_frame, Ack):
                    accepted.append((request, first_frame))
            resent = client.pipeline([request for request, _ in accepted])
            for (request, ack), answer in zip(accepted, resent, strict=True):
                assert answer.duplicate, f"acknowledged order {request.client_order_id} lost in trial {trial}"
                first = answer.messages[0]
                assert isinstance(first, Ack)
                assert first.order_id == ack.order_id
            journaled += [request for request, _ in accepted]
            feed(reference, journaled, len(journaled))
            acked_total = len(journaled)
            close_pooled_connections()
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()
    # After a clean shutdown, verify reads every record and snapshot back.
    verify = subprocess.run(
        [sys.executable, "-m", "meridian_hotpath", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert f"last good seq {len(journaled)};" in verify.stdout
    assert f"seq {len(journaled)} checksum {reference.checksum()}" in verify.stdout
    elapsed = time.monotonic() - started
    print(f"{TRIALS} kill -9 trials: {len(journaled)} inputs journaled, {durable_unanswered} unanswered")
    print(f"crash test took {elapsed:.1f} s")
