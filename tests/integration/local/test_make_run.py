"""`make run` end to end: the platform as a subprocess, the demo through the public API, clean exit."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.credentials import Credentials

from meridian_client import ApiError, MeridianClient
from meridian_local.endpoint.aws import aws_client
from meridian_local.preflight import port_is_free
from tests.browser import rendered_dom

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for ``condition`` itself (polled); the timeout only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child, *_children(child)}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


Platform = tuple[subprocess.Popen[str], dict[str, str], dict[str, Any], list[str]]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A running ``meridian_local run``: the process, its environment, its endpoints and its output."""
    with running_platform(tmp_path) as started:
        yield started


@contextlib.contextmanager
def running_platform(tmp_path: Path, **settings: str) -> Iterator[Platform]:
    """``meridian_local run`` with ``settings`` in its environment, stopped by its id (and every
    process it started) whatever happens. Every port is 0: each component binds one the OS picks,
    and endpoints.json names them."""
    env = {
        **os.environ,
        "MERIDIAN_STATE_DIR": str(tmp_path / "state"),
        "MERIDIAN_API_PORT": "0",
        "MERIDIAN_AWS_PORT": "0",
        "MERIDIAN_NODE_PORT": "0",
        "MERIDIAN_METRICS_PORT": "0",
        "MERIDIAN_STANDBY_PORT": "0",
        "MERIDIAN_STANDBY_METRICS_PORT": "0",
        "MERIDIAN_GATEWAY_PORT": "0",
        **settings,
    }
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "meridian_local", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Meridian is up"):
            break
    assert any(line.startswith("Meridian is up") for line in lines), "".join(lines)
    # Keep reading: a platform whose output nobody reads blocks on a full pipe at its next log line.
    threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True).start()
    endpoints = json.loads((tmp_path / "state" / "endpoints.json").read_text())
    try:
        yield process, env, endpoints, lines
    finally:
        stop_tree(process, signal.SIGINT)  # when the test failed before its own clean shutdown


def stop_tree(process: subprocess.Popen[str], signum: int) -> None:
    """A platform process still running: ``signum`` (it then stops what it started), SIGKILL after a
    minute, and SIGKILL to every process of its tree still alive after that, by their ids."""
    if process.poll() is not None:
        return
    children = _children(process.pid)
    process.send_signal(signum)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in children:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_demo_reaches_postgres_dynamodb_and_s3_then_everything_stops(
    platform: Platform,
) -> None:
    process, env, endpoints, output = platform
    names = ("api", "aws", "node", "metrics", "standby", "standby_metrics")
    ports = [_port(endpoints[name]) for name in names]
    assert endpoints["routes"] == f"{endpoints['node']},{endpoints['standby']}"  # the shard's pair
    assert 0 not in ports

    # A second platform on the same state dir says so and exits 2 instead of failing obscurely.
    second = subprocess.run(
        [sys.executable, "-m", "meridian_local", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2
    assert "already running" in second.stderr

    demo = subprocess.run(
        [sys.executable, "-m", "meridian_local", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Driving the running platform" in demo.stdout
    assert "(the same order, no second trade)" in demo.stdout
    assert "mallory with a session named alice -> 403 ACCESS_DENIED" in demo.stdout
    assert "AWS round trips each POST /orders waited for" in demo.stdout
    assert "bid None" not in demo.stdout  # an empty side of the book reads "none"
    assert "ask None" not in demo.stdout

    # The REST API checks each route against the caller's role in template.yaml, as API Gateway does.
    users = json.loads((Path(env["MERIDIAN_STATE_DIR"]) / "credentials.json").read_text())["users"]
    otto = MeridianClient(endpoints["api"], Credentials(users["otto"]["access_key"], users["otto"]["secret"]))
    assert otto.health()["status"] in ("ok", "degraded")
    with pytest.raises(ApiError) as refused:
        otto.submit_order("AAPL", "buy", 1, "190.00")
    assert (refused.value.status, refused.value.code) == (403, "ACCESS_DENIED")

    with psycopg.connect(endpoints["database_url"], autocommit=True) as conn:
        trades = conn.execute("SELECT count(*) FROM trades").fetchone()
        positions = conn.execute("SELECT account, symbol, quantity FROM positions ORDER BY 1, 2").fetchall()
        execution_ids = [row[0] for row in conn.execute("SELECT execution_id FROM trades")]
    assert trades is not None
    assert trades[0] == 5
    # From the node's drop copy (node number 1, its trades 1-5), the only source of trade events.
    assert sorted(execution_ids) == [f"1-{n}" for n in range(1, 6)]
    assert ("ACC-ALICE", "AAPL", 150) in positions
    assert ("ACC-BOB", "AAPL", -150) in positions

    # A quiet terminal: one line per request, no library warnings; the functions' logs in files.
    said = "".join(output)
    for noise in ("XDG_RUNTIME_DIR", "Feature Toggle", "unpublished metrics", "No application metrics"):
        assert noise not in said, noise
    assert re.search(r"\] POST\s+/orders 201 \d+\.\d ms alice", said), said[-2000:]
    logs = Path(endpoints["logs"])
    emf = [
        json.loads(line) for line in (logs / "orders-api.log").read_text().splitlines() if '"_aws"' in line
    ]
    assert {d["route"] for d in emf if "ApiLatency" in d} >= {"POST /orders", "DELETE /orders/{order_id}"}
    assert all(
        len(d["ApiLatency"]) == 1 for d in emf if isinstance(d.get("ApiLatency"), list)
    )  # one request each
    env_vars = json.loads((Path(env["MERIDIAN_STATE_DIR"]) / "env.json").read_text())
    assert env_vars["OrdersApiFunction"]["AWS_ENDPOINT_URL"] == endpoints["aws"]

    # The live dashboard renders the platform's data in a real browser, while alice trades.
    alice = MeridianClient(
        endpoints["api"], Credentials(users["alice"]["access_key"], users["alice"]["secret"])
    )
    trading = threading.Event()

    def trade() -> None:
        while not trading.is_set():
            alice.submit_order("MSFT", "buy", 1, "400.00", time_in_force="IOC")

    trader = threading.Thread(target=trade, daemon=True)
    trader.start()
    try:
        dom = rendered_dom(endpoints["api"] + "/dashboard")
    finally:
        trading.set()
        trader.join(timeout=30)
    status = json.loads(re.search(r'<span id="status">(\{.*?\})</span>', dom).group(1))  # type: ignore[union-attr]
    assert status["node_up"] is True
    assert status["samples"] >= 3
    assert all(status["points"][chart] > 0 for chart in ("latency", "throughput", "cpu", "depth", "lag")), (
        status
    )
    assert dom.count('class="uplot') >= 6

    dynamodb, s3 = aws_client("dynamodb", endpoints["aws"]), aws_client("s3", endpoints["aws"])
    market_tables = [
        t for t in dynamodb.list_tables()["TableNames"] if "MarketData" in t or "market-data" in t
    ]
    items = [i for t in market_tables for i in dynamodb.scan(TableName=t)["Items"]]
    assert any(i["sk"]["S"].startswith("TRADE#") for i in items)
    assert any(i["sk"]["S"] == "BOOK" and i["pk"]["S"] == "SYMBOL#AAPL" for i in items)
    archived = sum(
        s3.list_objects_v2(Bucket=b["Name"]).get("KeyCount", 0)
        for b in s3.list_buckets()["Buckets"]
        if "archive" in b["Name"]
    )
    assert archived > 0

    children = _children(process.pid)
    assert children, "the platform should have child processes (node, PostgreSQL)"
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=120)  # generous: CI machines are shared and slow
    except subprocess.TimeoutExpired:
        pytest.fail("the platform did not stop within 120 s of Ctrl-C; its output:\n" + "".join(output[-80:]))
    assert code == 0, "".join(output[-80:])
    _until(lambda: not [pid for pid in children if _alive(pid)], "every child process exited")
    _until(lambda: all(port_is_free("127.0.0.1", port) for port in ports), "every port released")


def test_two_shards_trade_their_own_symbols_with_fleet_unique_trade_ids(tmp_path: Path) -> None:
    """MERIDIAN_SHARDS=2: a second primary/standby pair owns MSFT and BTCUSD; the order API routes each
    order to its symbol's shard, and each shard's trades reach the ledger under its node number."""
    with running_platform(tmp_path, MERIDIAN_SHARDS="2") as (process, env, endpoints, _):
        shards = endpoints["shards"]
        assert sorted(shards) == ["A", "B"]
        assert shards["A"] == endpoints["routes"]
        assert len(shards["B"].split(",")) == 2  # its primary and standby
        assert not set(shards["A"].split(",")) & set(shards["B"].split(","))
        users = json.loads((Path(env["MERIDIAN_STATE_DIR"]) / "credentials.json").read_text())["users"]
        alice, bob = (
            MeridianClient(endpoints["api"], Credentials(users[n]["access_key"], users[n]["secret"]))
            for n in ("alice", "bob")
        )
        for symbol, price in (("AAPL", "190.00"), ("MSFT", "420.00")):
            alice.submit_order(symbol, "buy", 3, price)
            filled = bob.submit_order(symbol, "sell", 3, price)
            assert filled["status"] == "FILLED", filled

        def ledger() -> dict[str, str]:
            with psycopg.connect(endpoints["database_url"], autocommit=True) as conn:
                return dict(conn.execute("SELECT symbol, execution_id FROM trades").fetchall())

        _until(lambda: len(ledger()) == 2, "both shards' trades in the ledger", timeout=120)
        assert ledger() == {"AAPL": "1-1", "MSFT": "2-1"}  # node numbers 1 and 2: never the same id
        children = _children(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        _until(lambda: not any(_alive(pid) for pid in children), "every process stopped")
