"""A replicated shard (primary + hot standby, a DynamoDB lease on moto server) under kill -9.

Each trial: a client streams orders to the primary in ``--ack-after replica``; the primary (its
processes, as a host crash would) is killed at a random moment; the client finds the standby
serving (the failover time is measured from the kill to its first accepted order); every order the
old primary had acknowledged must be on the new one, exactly once: re-sending each acknowledged
order's client order id gets DUPLICATE, never a new order. The killed node then restarts and
rejoins as the standby (cutting back whatever it had not replicated), and the next trial kills the
new primary.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meridian.client import Answer, HotpathClient, HotpathError, close_pooled_connections
from meridian.domain import Side
from meridian.protocol import Flag, NewOrder, decode_stream, encode
from meridian_hotpath.process import NodeProcess
from tests.integration.hotpath.kinesis_server import AWS_ENV

pytestmark = pytest.mark.integration

TRIALS = 6
TABLE = "meridian-shard-leases-test"
TTL_MS = 600


def lease_table(endpoint: str) -> None:
    client = _dynamodb(endpoint)
    with contextlib.suppress(client.exceptions.ResourceInUseException):  # moto's state is per process
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "shard", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "shard", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def _dynamodb(endpoint: str) -> Any:
    import boto3  # noqa: PLC0415

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def start(data_dir: Path, name: str, endpoint: str, shard: str = "A", ttl_ms: int = TTL_MS) -> NodeProcess:
    return NodeProcess.start(
        data_dir,
        *("--shard", shard, "--lease-table", TABLE, "--node-id", name, "--ack-after", "replica"),
        *("--replication-port", "0", "--lease-ttl-ms", str(ttl_ms), "--snapshot-every", "300"),
        # Generous: on a shared machine a standby can stall for a second or more under a full test
        # run; one let go is out of sync and rightly never takes over, which is not the trial.
        *("--replica-timeout-ms", "5000"),
        env={**AWS_ENV, "AWS_ENDPOINT_URL": endpoint},
    )


class Streamer:
    """Pipelines new orders to one node until it dies; remembers every acknowledged one."""

    def __init__(self, port: int, prefix: str, rng: random.Random) -> None:
        self.port, self.prefix, self.rng = port, prefix, rng
        self.acked: dict[str, NewOrder] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError:
            return
        sent: dict[int, NewOrder] = {}
        buffer = b""
        n = 0
        try:
            while True:
                batch = []
                for _ in range(16):
                    n += 1
                    side = 1 + n % 2
                    price = 19_000 + self.rng.randint(-3, 3)
                    order = NewOrder(n, f"{self.prefix}-{n}", f"A{n % 5}", "AAPL", side, 1, 1, 0, 1, price)
                    sent[n] = order
                    batch.append(encode(order))
                sock.sendall(b"".join(batch))
                while len(sent) > 48:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        return
                    buffer += chunk
                    frames, consumed = decode_stream(buffer)
                    buffer = buffer[consumed:]
                    for message, flags in frames:
                        if flags & Flag.LAST and message.request_id in sent:
                            order = sent.pop(message.request_id)
                            self.acked[order.client_order_id] = order
        except OSError:
            return
        finally:
            sock.close()


def first_accepted(port: int, deadline: float) -> float:
    """When (monotonic) a node on ``port`` first accepts an order (it has taken over)."""
    while time.monotonic() < deadline:
        try:
            answer = HotpathClient("127.0.0.1", port, timeout=2.0).submit(
                "probe", "probe", "MSFT", Side.BUY, 1, 42_000
            )
            if answer.messages:
                return time.monotonic()
        except HotpathError:
            time.sleep(0.01)
        finally:
            close_pooled_connections()
    raise AssertionError("the standby never took over")


def fail_over(primary: NodeProcess, standby: NodeProcess, streamer: Streamer) -> float:
    """kill -9 the primary under ``streamer``'s orders; seconds until the standby accepts one."""
    killed_at = time.monotonic()
    primary.kill()
    streamer.thread.join(10)
    return first_accepted(standby.port, killed_at + 60) - killed_at


def assert_all_present_once(port: int, acked: dict[str, NewOrder]) -> int:
    """Re-send every acknowledged order: each must be a DUPLICATE (present, and not entered twice).

    Re-sending is idempotent, so a new primary that fences itself meanwhile (on a starved machine a
    lease renewal can take longer than this test's 600 ms lease) and takes its lease again is simply
    asked again, a chunk at a time.
    """
    orders = [order._replace(request_id=10**9 + i) for i, order in enumerate(acked.values())]
    answers: list[Answer] = []
    for start_at in range(0, len(orders), 2000):
        chunk = orders[start_at : start_at + 2000]
        for attempt in range(5):
            try:
                answers += HotpathClient("127.0.0.1", port, timeout=10.0).pipeline(chunk)
                break
            except HotpathError:
                if attempt == 4:
                    raise
                first_accepted(port, time.monotonic() + 60)
            finally:
                close_pooled_connections()
    missing = [
        order.client_order_id
        for order, answer in zip(acked.values(), answers, strict=True)
        if not answer.duplicate
    ]
    assert not missing, f"{len(missing)} acknowledged orders are not on the new primary: {missing[:5]}"
    return len(answers)


def test_acknowledged_orders_survive_the_primarys_death_and_the_standby_takes_over(
    tmp_path: Path, moto_endpoint: str
) -> None:
    lease_table(moto_endpoint)
    rng = random.Random(20_261_203)
    dirs = {"n1": tmp_path / "n1", "n2": tmp_path / "n2"}
    nodes: dict[str, NodeProcess] = {"n1": start(dirs["n1"], "n1", moto_endpoint)}
    nodes["n2"] = start(dirs["n2"], "n2", moto_endpoint)
    primary, standby = "n1", "n2"
    failovers: list[float] = []
    checked = 0
    try:
        for trial in range(TRIALS):
            wait_for(lambda: lease_of(moto_endpoint, "A")["in_sync"], "the standby in sync")
            streamer = Streamer(nodes[primary].port, f"t{trial}", rng)
            time.sleep(rng.uniform(0.3, 0.8))
            # The trial kills an in-sync primary: had a stall let the standby go meanwhile, it waits
            # for the standby to catch up again (streaming goes on) before the kill.
            wait_for(lambda: lease_of(moto_endpoint, "A")["in_sync"], "the standby in sync again")
            killed_at = time.monotonic()
            nodes[primary].kill()
            streamer.thread.join(10)
            try:
                failovers.append(first_accepted(nodes[standby].port, killed_at + 60) - killed_at)
            except AssertionError as exc:  # say what the standby was doing
                log = nodes[standby].log_path.read_text().splitlines()[-15:]
                raise AssertionError(f"{exc}; its log ends:\n" + "\n".join(log)) from exc
            checked += assert_all_present_once(nodes[standby].port, streamer.acked)
            nodes[primary] = start(dirs[primary], primary, moto_endpoint)  # back, as the standby now
            primary, standby = standby, primary
    finally:
        for node in nodes.values():
            node.stop()
    failover_ms = [round(f * 1000) for f in failovers]
    print(f"{TRIALS} failovers: {failover_ms} ms; {checked} acknowledged orders checked")
    assert checked > 0


def lease_of(endpoint: str, shard: str) -> dict[str, Any]:
    client = _dynamodb(endpoint)
    item = client.get_item(TableName=TABLE, Key={"shard": {"S": shard}}, ConsistentRead=True)["Item"]
    return {
        "holder": item["holder"]["S"],
        "epoch": int(item["epoch"]["N"]),
        "in_sync": item["in_sync"]["BOOL"],
    }


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def accepts(port: int) -> bool:
    try:
        HotpathClient("127.0.0.1", port, timeout=1.0).heartbeat()
        return True
    except HotpathError:
        return False
    finally:
        close_pooled_connections()


def test_a_stalled_standby_is_let_go_and_one_out_of_sync_never_takes_over(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """A standby that stops acknowledging (SIGSTOP: a stalled peer, a cut link) is let go: the
    primary goes on alone once the lease says its standby is out of sync. While that is so, the
    standby must not take the shard even when the primary dies: it lacks acknowledged orders. The
    old primary, back, takes it again with every order; the standby catches up and is in sync."""
    lease_table(moto_endpoint)
    rng = random.Random(7)
    primary = start(tmp_path / "p", "p", moto_endpoint, "B")
    standby = start(tmp_path / "s", "s", moto_endpoint, "B")
    try:
        wait_for(lambda: lease_of(moto_endpoint, "B")["in_sync"], "the standby in sync")
        standby.pause()
        streamer = Streamer(primary.port, "alone", rng)
        wait_for(lambda: len(streamer.acked) > 500, "orders answered without the standby")
        assert lease_of(moto_endpoint, "B")["in_sync"] is False
        primary.kill()
        streamer.thread.join(10)
        standby.resume()
        time.sleep(TTL_MS / 1000 * 3)  # long past the lease: an in-sync standby would have taken over
        assert not accepts(standby.port), "a standby out of sync took over"
        assert lease_of(moto_endpoint, "B")["holder"] == "p"
        primary = start(tmp_path / "p", "p", moto_endpoint, "B")  # the old primary comes back: it leads again
        wait_for(lambda: accepts(primary.port), "the old primary serving")
        assert assert_all_present_once(primary.port, streamer.acked) == len(streamer.acked)
        wait_for(lambda: lease_of(moto_endpoint, "B")["in_sync"], "the standby in sync again")
    finally:
        with contextlib.suppress(ProcessLookupError):
            standby.resume()
        standby.stop()
        primary.stop()


def test_a_paused_primary_gets_no_answer_out_once_its_standby_took_over(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """Fencing: SIGSTOP the primary long enough for its standby to take over, then SIGCONT it. The
    orders its client sent meanwhile get no answer from it (its lease lapsed, its standby is gone),
    and none of them is on the new primary."""
    lease_table(moto_endpoint)
    primary = start(tmp_path / "p", "p", moto_endpoint, "C")
    standby = start(tmp_path / "s", "s", moto_endpoint, "C")
    try:
        wait_for(lambda: lease_of(moto_endpoint, "C")["in_sync"], "the standby in sync")
        sock = socket.create_connection(("127.0.0.1", primary.port), timeout=10)
        primary.pause()
        late = [NewOrder(n, f"late-{n}", "L", "AAPL", 1, 1, 1, 0, 1, 19_000) for n in range(1, 41)]
        sock.sendall(b"".join(encode(order) for order in late))  # into the paused primary's socket
        wait_for(lambda: accepts(standby.port), "the standby taking over")
        assert lease_of(moto_endpoint, "C")["holder"] == "s"
        primary.resume()
        answered = []
        buffer = b""
        sock.settimeout(10)
        while chunk := sock.recv(1 << 16):  # until the old primary closes the connection
            buffer += chunk
            frames, consumed = decode_stream(buffer)
            buffer = buffer[consumed:]
            answered += [message for message, _ in frames]
        sock.close()
        assert answered == [], f"the deposed primary answered {len(answered)} frames"
        # Fenced, it started again and rejoined as the standby of the node that took its shard.
        wait_for(lambda: lease_of(moto_endpoint, "C")["in_sync"], "the deposed primary back as standby")
        assert lease_of(moto_endpoint, "C")["holder"] == "s"
        assert primary.process.poll() is None
        client = HotpathClient("127.0.0.1", standby.port, timeout=10.0)
        fresh = client.pipeline([order._replace(request_id=10**6 + order.request_id) for order in late])
        close_pooled_connections()
        assert not any(answer.duplicate for answer in fresh), (
            "orders the deposed primary took reached the new one"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            primary.resume()
        primary.stop()
        standby.stop()


def test_a_primary_that_lost_its_lease_with_nobody_to_take_it_leads_again_on_its_port(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """Fencing without a successor: a primary paused past its lease (no standby) while answers
    are owed stops answering, starts again in its process, takes the lease back in a new epoch and
    serves on the same port with every order it had acknowledged."""
    lease_table(moto_endpoint)
    node = start(tmp_path / "solo", "solo", moto_endpoint, "D")
    try:
        epoch = lease_of(moto_endpoint, "D")["epoch"]
        streamer = Streamer(node.port, "solo", random.Random(7))
        time.sleep(0.3)
        node.pause()
        time.sleep(TTL_MS / 1000 * 2)
        node.resume()
        streamer.thread.join(10)
        assert not streamer.thread.is_alive(), "the paused primary went on answering"
        wait_for(lambda: lease_of(moto_endpoint, "D")["epoch"] > epoch, "the lease taken back")
        first_accepted(node.port, time.monotonic() + 20)
        assert streamer.acked
        assert assert_all_present_once(node.port, streamer.acked) == len(streamer.acked)
        assert node.process.poll() is None
    finally:
        node.stop()
