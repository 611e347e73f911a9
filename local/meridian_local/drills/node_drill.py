"""``python -m meridian_local drill-node``: rehearse the death of the matching shard's primary.

The local platform starts for the drill alone (in ``<state dir>/node-drill``, every port chosen by
the OS, its own moto and PostgreSQL; a running ``make run`` is left alone), its shard a primary and
a hot standby in ``--ack-after replica`` with the lease in the template's lease table. The drill

1. trades under load: a trader logged on with the platform's orders key pipelines orders to the
   primary at ``--rate`` orders a second, and alice trades through the REST API;
2. kills the primary with SIGKILL, the node and its journal follower together (a host loss);
3. shows the promotion: when the standby took the lease (its log), when it accepted its first order
   and when the REST API answered alice's next order (the order API finds the new primary through
   the routing table; a 503 before that is retried with the same idempotency key);
4. re-sends every order the primary had acknowledged, by client order id: each must be a
   DUPLICATE on the new primary (present, and not entered twice);
5. starts the killed node again: it rejoins as the standby and is in sync;
6. waits for the ledger: every trade of the acknowledged orders is there, as the node reported it,
   and the ledger holds as many trades as the new primary made (one row per execution id).

Exit status: 0 when every check holds, 1 when one fails, 2 for bad arguments or a drill already
running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import requests
from botocore.credentials import Credentials

from meridian.client import HotpathClient, HotpathError, close_pooled_connections
from meridian.domain import OrderType, Side, TimeInForce
from meridian.executions import execution_id
from meridian.protocol import Ack, Fill, NewOrder, SessionRole
from meridian.session_auth import SessionKey, load_keys_file
from meridian_client.api import ApiError, MeridianClient
from meridian_local.cloud.sam_template import REPO_ROOT
from meridian_local.platform import LocalPlatform
from meridian_local.preflight import PreflightError
from meridian_local.settings import PlatformConfig
from meridian_local.shard import NODE_NAMES, SHARD

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RTO_TARGET_S = 30.0  # the seed's recovery objective; the promotion itself is about the lease's TTL
SYMBOL = "AAPL"
BATCH = 50  # orders per pipelined request batch
WAIT_S = 120.0  # the longest any step waits (the ledger's pipeline on a loaded machine)
Say = Callable[[str], None]


def state_dir() -> Path:
    base = os.environ.get("MERIDIAN_STATE_DIR") or str(REPO_ROOT / ".local-platform")
    return Path(base) / "node-drill"


@dataclass
class Trader:
    """Pipelines orders to one node at a steady rate until it goes; keeps what it acknowledged."""

    address: tuple[str, int]
    key: SessionKey
    rate: float
    acked: dict[str, NewOrder] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)  # by execution id
    lost_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Trader:
        self._thread = threading.Thread(target=self._run, name="drill-trader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _orders(self, first: int) -> list[NewOrder]:
        orders = []
        for n in range(first, first + BATCH):
            side = Side.BUY if n % 2 else Side.SELL
            price = 19_000 + (n * 7919) % 7 - 3  # around 190.00: about half of them trade
            account = f"ACC-DRILL-{n % 5}"
            orders.append(
                NewOrder(
                    n, f"drill-{n}", account, SYMBOL, side, OrderType.LIMIT, TimeInForce.GTC, 0, 1, price
                )
            )
        return orders

    def _run(self) -> None:
        client = HotpathClient(*self.address, timeout=5.0, connect_timeout=2.0, credential=self.key)
        period = BATCH / self.rate
        next_at = time.monotonic()
        n = 1
        try:
            while not self._stop.is_set():
                orders = self._orders(n)
                n += BATCH
                try:
                    answers = client.pipeline(orders)
                except HotpathError:
                    self.lost_at = time.monotonic()
                    return
                for order, answer in zip(orders, answers, strict=True):
                    if any(isinstance(m, Ack) for m in answer.messages):
                        self.acked[order.client_order_id] = order
                    for message in answer.messages:
                        if isinstance(message, Fill):
                            self.fills[execution_id(message.trade_id)] = message
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            close_pooled_connections()


def _orders_key(platform: LocalPlatform) -> SessionKey:
    keys = load_keys_file(platform.config.state_dir / "session-keys.json")
    return next(key for key in keys if key.role is SessionRole.ORDERS)


def _lease(platform: LocalPlatform) -> dict[str, Any]:
    table = platform.shards.lease_table()
    item = (
        platform.client("dynamodb")
        .get_item(TableName=table, Key={"shard": {"S": SHARD}}, ConsistentRead=True)
        .get("Item", {})
    )
    return {
        "holder": item.get("holder", {}).get("S"),
        "epoch": int(item.get("epoch", {}).get("N", "0")),
        "in_sync": bool(item.get("in_sync", {}).get("BOOL")),
    }


def _wait(condition: Callable[[], bool], what: str, seconds: float = WAIT_S) -> float:
    """Poll ``condition``; return when (monotonic) it held. Raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.02)
    return time.monotonic()


def _accepts(address: tuple[str, int], key: SessionKey, n: int) -> bool:
    try:
        answer = HotpathClient(*address, timeout=2.0, connect_timeout=0.5, credential=key).submit(
            f"drill-probe-{n}", "ACC-DRILL-P", "MSFT", Side.BUY, 1, 41_000
        )
        return any(isinstance(m, Ack) for m in answer.messages)
    except HotpathError:
        return False
    finally:
        close_pooled_connections()


def _alice(platform: LocalPlatform) -> MeridianClient:
    users = json.loads(platform.credentials_file.read_text())["users"]
    keys = users["alice"]
    return MeridianClient(
        platform.endpoints.api, Credentials(keys["access_key"], keys["secret"]), session=requests.Session()
    )


def _rest_order(alice: MeridianClient, key: str, deadline: float) -> float:
    """alice's order through POST /orders, retried with one idempotency key while the matching
    node is unavailable (503); when (monotonic) it was accepted."""
    while True:
        try:
            alice.submit_order(SYMBOL, "BUY", 1, "185.00", idempotency_key=key, client_order_id=key[:20])
            return time.monotonic()
        except ApiError as error:
            if error.status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _took_over_line(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if "took over shard" in line]
    return lines[-1] if lines else ""


def _node_trades(metrics_url: str) -> int:
    with urllib.request.urlopen(metrics_url, timeout=5) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    return int(
        sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("meridian_trades_total"))
    )


def _ledger(database_url: str) -> tuple[int, dict[str, tuple[Any, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT execution_id, buy_client_order_id, sell_client_order_id, quantity FROM trades"
        ).fetchall()
        (count,) = conn.execute("SELECT count(*) FROM trades").fetchone() or (0,)
    return int(count), {row[0]: tuple(row[1:]) for row in rows}


def _check(ok: bool, line: str, say: Say, failures: list[str]) -> None:
    say(f"  {'ok ' if ok else 'FAIL'} {line}")
    if not ok:
        failures.append(line)


def rehearse(platform: LocalPlatform, rate: float, seconds: float, say: Say) -> bool:
    """The drill on a started platform; True when every check held."""
    failures: list[str] = []
    key = _orders_key(platform)
    primary, standby = NODE_NAMES
    _wait(lambda: _lease(platform)["in_sync"], "the standby in sync")
    lease = _lease(platform)
    routes = platform.endpoints.routes
    say(f"Shard {SHARD}: {primary} leads in epoch {lease['epoch']}, {standby} in sync (routes {routes})")
    alice = _alice(platform)
    alice.submit_order(SYMBOL, "BUY", 1, "185.00", idempotency_key=str(uuid.uuid4()))
    trader = Trader(platform.shards.node_address(primary), key, rate).start()
    time.sleep(seconds)
    acked_before = len(trader.acked)
    killed_at = time.monotonic()
    platform.nodes[primary].kill()
    say(f"kill -9 {primary} (node and follower) after {acked_before} orders acknowledged at ~{rate:g}/s")
    trader.stop()
    probes = iter(range(10**9))
    accepted_at = _wait(
        lambda: _accepts(platform.shards.node_address(standby), key, next(probes)), "a takeover"
    )
    rest_at = _rest_order(alice, str(uuid.uuid4()), killed_at + WAIT_S)
    took_over = _took_over_line(platform.nodes[standby].log_path)
    say(f"  {standby}: {took_over.split(' WARNING ')[-1] or 'took over (not in its log)'}")
    promotion = accepted_at - killed_at
    ttl = platform.config.lease_ttl_ms
    say(f"  first order accepted by {standby}: {promotion:.2f} s after the kill (lease TTL {ttl} ms)")
    rest = rest_at - killed_at
    say(f"  first REST order accepted (POST /orders, to the new primary): {rest:.2f} s after the kill")
    _check(
        promotion <= RTO_TARGET_S,
        f"promotion within the {RTO_TARGET_S:g} s recovery objective",
        say,
        failures,
    )
    acked = list(trader.acked.values())
    client = HotpathClient(*platform.shards.node_address(standby), timeout=10.0, credential=key)
    answers = []
    for start in range(0, len(acked), 2000):
        answers += client.pipeline(acked[start : start + 2000])
    close_pooled_connections()
    missing = [
        order.client_order_id for order, answer in zip(acked, answers, strict=True) if not answer.duplicate
    ]
    _check(
        bool(acked) and not missing,
        f"{len(acked)} orders acknowledged by {primary}: {len(acked) - len(missing)} on {standby} "
        f"(re-sent: DUPLICATE), {len(missing)} missing, none entered twice",
        say,
        failures,
    )
    killed = platform.nodes[primary]
    restarted = platform.shards.start_node(primary, killed.port, killed.metrics_port or 0)  # its own ports
    say(f"{primary} started again on its own journal (port {restarted.port})")
    _wait(
        lambda: _lease(platform)["holder"] == standby and _lease(platform)["in_sync"],
        "the old primary in sync",
    )
    lease = _lease(platform)
    _check(
        True,
        f"{primary} rejoined as the standby of {standby} (epoch {lease['epoch']}, in sync)",
        say,
        failures,
    )
    metrics = platform.endpoints.standby_metrics
    made = _node_trades(metrics)
    database = platform.endpoints.database_url
    fills = trader.fills

    def ledger_caught_up() -> bool:
        count, rows = _ledger(database)
        return count >= made and all(execution in rows for execution in fills)

    try:
        recorded_at = _wait(ledger_caught_up, "the ledger holding every trade")
    except TimeoutError as error:
        count, rows = _ledger(database)
        absent = sorted(set(fills) - set(rows))
        _check(
            False,
            f"{error}: {count} of {made} trades; {len(absent)} acknowledged fills absent "
            f"({', '.join(absent[:5])})",
            say,
            failures,
        )
        return False
    count, rows = _ledger(database)
    wrong = [
        execution
        for execution, fill in fills.items()
        if rows[execution] != (fill.buy_client_order_id, fill.sell_client_order_id, fill.quantity)
    ]
    _check(
        count == made == len(rows) and not wrong,
        f"ledger: {count} trades, one per execution id, as many as {standby} made ({made}); "
        f"the {len(fills)} fills acknowledged before the kill among them as reported "
        f"({recorded_at - killed_at:.1f} s after the kill)",
        say,
        failures,
    )
    return not failures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="orders a second to the primary (default 1000)"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="trading before the kill (default 2)")


def main(args: argparse.Namespace) -> int:
    if args.rate <= 0 or args.seconds <= 0:
        print("drill-node: --rate and --seconds must be positive", flush=True)
        return EXIT_USAGE
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # the platform's stop runs (finally), every process it started ends

    signal.signal(signal.SIGTERM, on_signal)
    directory = state_dir()
    config = PlatformConfig(
        state_dir=directory,
        api_port=0,
        aws_port=0,
        node_port=0,
        metrics_port=0,
        standby=True,
        standby_port=0,
        standby_metrics_port=0,
        gateway_port=0,
        database_url="",
        api_workers=2,
        prometheus_port=0,
    )
    steps = re.compile(r"^\[\d+/\d+\] .*: ready")
    platform = LocalPlatform(
        config, say=lambda line: print(f"  {line}", flush=True) if steps.match(line) else None
    )
    print(f"Node failover drill: a local platform of its own in {directory}", flush=True)
    try:
        platform.start()
    except PreflightError as error:
        print(f"error: {error}", flush=True)
        return EXIT_USAGE
    try:
        passed = rehearse(platform, args.rate, args.seconds, lambda line: print(line, flush=True))
    except (TimeoutError, HotpathError, ApiError) as error:
        print(f"drill-node: stopped: {error}", flush=True)
        passed = False
    finally:
        platform.stop()
    print("Node failover drill: " + ("passed" if passed else "FAILED"), flush=True)
    return EXIT_OK if passed else EXIT_FAILED
