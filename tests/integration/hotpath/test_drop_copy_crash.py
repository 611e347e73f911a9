"""kill -9 the node while a client trades, restart it, and check neither the drop copy nor the tape
lost a trade.

The node (a real process, node number 7) publishes its drop copy and its market data to moto
server's Kinesis. A client streams a deterministic order flow; after a random interval the node is
killed with SIGKILL, restarted on the same data directory, and the next trial streams on. At the
end the node is stopped cleanly and both streams are read back. The executions stream:

* every fill the client received (any Fill frame: the node sends none before its input is
  durable) is in the stream, with identical fields;
* an execution id names one trade: every copy of it (a restart re-sends what the journal
  replays after the last snapshot) carries the same fields, and different trades have different ids;
* every id carries the node number, and together they are every trade the node made: 7-1..7-N.

The market-data stream (the tape's one source) is created only halfway through the trials: until
then its sink fails while the drop copy delivers, so the market-data publisher alone must hold
every snapshot back. Read back at the end:

* every fill the client received is a trade record there, with identical public fields;
* a trade id names one print: its copies differ only in send time and the ``resent`` mark, and
  the trade records are every trade the drop copy has;
* no record names an account or a client order id.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.executions import drop_copy_record, execution_id, trade_id_base
from meridian.protocol import Fill, Flag, decode_stream, encode
from meridian_hotpath.journal import StateChange
from meridian_hotpath.marketdata import trade_record
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV, kinesis_client, read_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = "meridian-executions"
MARKET_DATA = "meridian-market-data-kill-9"  # moto server state is per process: a name of its own
PRIVATE = ("account", "client_order_id")
NODE_NUMBER = 7
TRIALS = 6
WINDOW = 32  # requests in flight: kills land mid-batch
MAX_PER_TRIAL = 4_000  # a trial that outlives its kill interval stops sending here
INSTRUMENTS = {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}


class Trader(threading.Thread):
    """Streams inputs until the connection dies (or MAX_PER_TRIAL); keeps every Fill it receives."""

    def __init__(self, port: int, flow: Iterator[StateChange]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.flow = flow
        self.fills: list[Fill] = []
        self.sent = 0

    def run(self) -> None:
        buffer = b""
        in_flight = 0
        try:
            while self.sent < MAX_PER_TRIAL or in_flight:
                batch = [next(self.flow) for _ in range(min(WINDOW - in_flight, MAX_PER_TRIAL - self.sent))]
                if batch:
                    self.sock.sendall(b"".join(encode(request) for request in batch))
                    self.sent += len(batch)
                    in_flight += len(batch)
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return
                buffer += chunk
                frames, consumed = decode_stream(buffer)
                buffer = buffer[consumed:]
                for message, flags in frames:
                    if isinstance(message, Fill):
                        self.fills.append(message)
                    if flags & Flag.LAST:  # this request's answer is complete
                        in_flight -= 1
        except OSError:
            return  # the node was killed
        finally:
            self.sock.close()


def comparable(fields: dict[str, Any]) -> dict[str, Any]:
    """A drop-copy record without what legitimately differs between copies (send time, stream key)."""
    return {key: value for key, value in fields.items() if key not in ("timestamp_ns", "key")}


def expected(fill: Fill) -> dict[str, Any]:
    return comparable(drop_copy_record(fill, str(INSTRUMENTS[fill.symbol].to_price(fill.price)), 0))


def public(fields: dict[str, Any]) -> dict[str, Any]:
    """A trade record without what legitimately differs between copies (send time, re-send mark)."""
    return {key: value for key, value in fields.items() if key not in ("timestamp_ns", "key", "resent")}


def expected_print(fill: Fill) -> dict[str, Any]:
    return public(trade_record(fill, 0).payload)


def check_the_tape(records: list[dict[str, Any]], received: list[Fill], trade_ids: list[int]) -> int:
    """Every acknowledged fill is a trade record; one print per trade id; nothing private."""
    for record in records:
        assert not [key for key in record if any(word in key for word in PRIVATE)], record
    prints: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["type"] == "trade":
            assert record["key"] == record["symbol"], "partition key = symbol"
            prints[record["trade_id"]].append(public(record))
    for trade_id, copies in prints.items():
        assert all(copy == copies[0] for copy in copies), f"trade {trade_id} printed differently: {copies}"
    for fill in received:
        found = prints.get(fill.trade_id)
        assert found is not None, f"acknowledged trade {fill.trade_id} (seq {fill.seq}) is not on the tape"
        assert found[0] == expected_print(fill)
    assert sorted(prints) == trade_ids, "the tape has every trade the drop copy has, and no other"
    return sum(len(copies) for copies in prints.values())


@pytest.mark.parametrize("ack_after", ["fsync", "async"])
def test_every_acknowledged_trade_survives_kill_9_in_the_drop_copy_and_on_the_tape(
    tmp_path: Path, moto_endpoint: str, ack_after: str
) -> None:
    kinesis = kinesis_client(moto_endpoint)
    stream, market_data = f"{STREAM}-{ack_after}", f"{MARKET_DATA}-{ack_after}"  # one pair per mode
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}
    args = (
        *("--executions-stream", stream, "--kinesis-stream", market_data),
        *("--node-number", str(NODE_NUMBER), "--snapshot-every", "200", "--ack-after", ack_after),
    )
    data_dir = tmp_path / "node"
    rng = random.Random(20_261_125)
    flow = synthetic_flow(seed=1125, count=10**9)
    received: list[Fill] = []
    started = time.monotonic()
    node = NodeProcess.start(data_dir, *args, env=env)
    try:
        for trial in range(TRIALS):
            if trial == TRIALS // 2:  # the market-data sink has failed so far: now it takes records
                kinesis.create_stream(StreamName=market_data, ShardCount=2)
            trader = Trader(node.port, flow)
            trader.start()
            time.sleep(rng.uniform(0.05, 0.5))
            node.kill()
            trader.join(30)
            assert not trader.is_alive(), trial
            received += trader.fills
            node = NodeProcess.start(data_dir, *args, env=env)
        finisher = Trader(node.port, flow)  # the last run ends cleanly: everything is delivered
        finisher.run()
        received += finisher.fills
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()

    records = read_stream(kinesis, stream)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        assert record["key"] == record["symbol"], "partition key = symbol"
        by_id[record["execution_id"]].append(comparable(record))
    for execution, copies in by_id.items():
        assert all(copy == copies[0] for copy in copies), f"{execution} names different trades: {copies}"
        assert execution == execution_id(copies[0]["trade_id"])
        assert execution.startswith(f"{NODE_NUMBER}-")
    assert received, "the flow traded"
    for fill in received:
        found = by_id.get(execution_id(fill.trade_id))
        missing = f"acknowledged trade {execution_id(fill.trade_id)} (seq {fill.seq}) is not in the drop copy"
        assert found is not None, missing
        assert found[0] == expected(fill)
    base = trade_id_base(NODE_NUMBER)
    made = sorted(copies[0]["trade_id"] for copies in by_id.values())
    assert made == list(range(base + 1, base + len(made) + 1)), "every trade the node made, once each id"
    printed = check_the_tape(read_stream(kinesis, market_data), received, made)
    elapsed = time.monotonic() - started
    print(
        f"{TRIALS} kill -9 trials: {len(received)} fills acknowledged, {len(made)} trades, "
        f"{len(records)} drop-copy records ({len(records) - len(made)} re-sent copies), "
        f"{printed} trade records ({printed - len(made)} re-sent copies), {elapsed:.1f} s"
    )
