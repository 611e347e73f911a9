"""`make demo`: a short trading session from two accounts through the public REST API.

Alice and Bob trade AAPL and MSFT (resting orders, crossing orders, a cancel, a replace, an IOC and
an idempotent retry). The demo then waits for the post-trade pipeline and prints the fills, the
positions the ledger wrote to PostgreSQL, the market data in DynamoDB, the surveillance findings,
the Firehose archive in S3, and the latency percentiles (the API round trip measured here, beside
the AWS round trips each order waited for, as the local gateway reports them, and the node's own
order->ack figures from its metrics endpoint).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from botocore.credentials import Credentials
from prometheus_client.parser import text_string_to_metric_families

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.ledger import queries
from meridian.stats import nearest_rank
from meridian_client.api import ApiError, MeridianClient
from meridian_client.models import OrderOut
from meridian_client.output import table_text as render
from meridian_local.apigateway.apigw import ROUND_TRIPS_HEADER
from meridian_local.endpoint.aws import aws_client

Say = Callable[[str], None]
FINDINGS_QUERY = (
    "SELECT rule, severity, account, symbol, summary FROM surveillance_findings ORDER BY detected_at"
)


@dataclass
class DemoResult:
    orders: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    api_latency_ms: list[float] = field(default_factory=list)
    aws_round_trips: list[int] = field(default_factory=list)
    ledger_trades: int = 0
    positions: list[dict[str, Any]] = field(default_factory=list)
    market_data: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    archive_objects: int = 0
    node_latency_us: dict[str, float] = field(default_factory=dict)
    cancellations: list[dict[str, Any]] = field(default_factory=list)


def _instrument(symbol: str) -> Instrument:
    return next((i for i in DEFAULT_INSTRUMENTS if i.symbol == symbol), Instrument(symbol))


def _client(api_url: str, credentials_file: Path, user: str, session: requests.Session) -> MeridianClient:
    keys = json.loads(credentials_file.read_text())["users"][user]
    return MeridianClient(api_url, Credentials(keys["access_key"], keys["secret"]), session=session)


class Session:
    def __init__(self, api_url: str, credentials_file: Path, say: Say) -> None:
        http = requests.Session()
        http.hooks["response"].append(self._count_round_trips)
        self.alice = _client(api_url, credentials_file, "alice", http)
        self.bob = _client(api_url, credentials_file, "bob", http)
        self.impostor = _client(api_url, credentials_file, "mallory-as-alice", http)
        self.say = say
        self.result = DemoResult()

    def _count_round_trips(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        counted = response.headers.get(ROUND_TRIPS_HEADER)
        request = response.request
        if counted and request.method == "POST" and (request.path_url or "").rstrip("/") == "/orders":
            self.result.aws_round_trips.append(int(counted))

    def order(
        self,
        who: MeridianClient,
        name: str,
        symbol: str,
        side: str,
        qty: int,
        price: str | None,
        **options: Any,
    ) -> OrderOut | None:
        began = time.perf_counter()
        try:
            order = who.submit_order(symbol, side, qty, price, **options)
        except ApiError as exc:
            label = f"  {name:<5} {side:<4} {qty:>4} {symbol:<5} @ {price or 'MKT':>7}"
            self.say(f"{label}  -> {exc.status} {exc.code}")
            return None
        self.result.api_latency_ms.append((time.perf_counter() - began) * 1000)
        self.result.orders += 1
        for fill in order.get("fills", []):
            self.result.fills.append(
                {"account": order.account, "symbol": symbol, "side": side, **fill.to_json()}
            )
        status = order["status"] + (f" ({order['cancel_reason']})" if order.get("cancel_reason") else "")
        average = f" avg {order['average_price']}" if order.get("average_price") else ""
        self.say(
            f"  {name:<5} {side:<4} {qty:>4} {symbol:<5} @ {price or 'MKT':>7}  -> {status:<28} "
            f"filled {order['filled_quantity']:>4}{average}  order {order['order_id']}"
        )
        return order

    def trade(self) -> None:
        a, b = self.alice, self.bob
        self.order(a, "alice", "AAPL", "BUY", 100, "189.90")
        self.order(a, "alice", "AAPL", "BUY", 50, "189.95")
        resting = self.order(b, "bob", "AAPL", "SELL", 80, "190.10")
        self.order(b, "bob", "AAPL", "SELL", 120, "189.90")  # crosses both of alice's bids
        self.order(a, "alice", "AAPL", "BUY", 30, "190.10")  # lifts part of bob's offer
        if resting:
            replaced = b.replace_order(resting["order_id"], quantity=20, price="190.10")
            self.say(
                f"  bob   replace {resting['order_id']} -> {replaced['leaves_quantity']} left (priority kept)"
            )
        self.order(a, "alice", "MSFT", "BUY", 40, "419.50")
        cancel_me = self.order(a, "alice", "MSFT", "BUY", 10, "418.00")
        if cancel_me:
            cancelled = a.cancel_order(cancel_me["order_id"])
            self.say(f"  alice cancel {cancel_me['order_id']} -> {cancelled['status']}")
        key = f"demo-{uuid.uuid4().hex[:12]}"
        first = self.order(b, "bob", "MSFT", "SELL", 25, "419.50", idempotency_key=key)
        began = time.perf_counter()
        retry = b.submit_order("MSFT", "SELL", 25, "419.50", idempotency_key=key)
        self.result.api_latency_ms.append((time.perf_counter() - began) * 1000)
        same = first is not None and retry.order_id == first.order_id
        outcome = "the same order, no second trade" if same else "A DIFFERENT ORDER"
        self.say(f"  bob   retry with the same Idempotency-Key -> order {retry['order_id']} ({outcome})")
        self.order(b, "bob", "MSFT", "SELL", 30, "419.00", time_in_force="IOC")
        self.order(a, "alice", "MSFT", "BUY", 500, "419.50", time_in_force="FOK")  # cannot fill: says why
        self.quote_and_pull(b, "bob", count=40)
        self.impersonate()

    def impersonate(self) -> None:
        """Mallory asks for a trader session named alice: the trust policy binds the name to the caller."""
        try:
            self.impostor.list_orders()
        except ApiError as exc:
            outcome = f"{exc.status} {exc.code}"
            self.say(f"  mallory with a session named alice -> {outcome} (a session is its caller's name)")
            return
        self.say(
            "  mallory with a session named alice -> ACCEPTED: THE SESSION NAME IS NOT BOUND TO THE CALLER"
        )

    def quote_and_pull(self, who: MeridianClient, name: str, count: int) -> None:
        """Quotes placed and pulled at once: the pattern the cancel-ratio surveillance rule exists for."""
        for i in range(count):
            began = time.perf_counter()
            quote = who.submit_order("AAPL", "SELL", 10, f"{195 + i / 100:.2f}")
            self.result.api_latency_ms.append((time.perf_counter() - began) * 1000)
            who.cancel_order(quote["order_id"])
        self.say(f"  {name:<5} placed and pulled {count} AAPL quotes (a high cancel ratio)")


def _node_latency(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:  # noqa: S310 - loopback metrics
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "meridian_request_latency_quantile_seconds":
            for sample in family.samples:
                out[sample.labels["quantile"]] = sample.value * 1e6  # labelled p50, p99, p99.9
    return out


def _wait_for_ledger(database_url: str, expected: int, deadline_s: float = 30.0) -> list[Any]:
    end = time.monotonic() + deadline_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            count = conn.execute("SELECT count(*) FROM trades").fetchone()
            if (count and count[0] >= expected) or time.monotonic() > end:
                return queries.positions(conn, None)
            time.sleep(0.2)


def _cancellations(database_url: str, deadline_s: float = 10.0) -> list[dict[str, Any]]:
    """Cancellations per reason, once the ledger has some (they arrive through the event bus)."""
    end = time.monotonic() + deadline_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = queries.cancellations(conn, None)
            if rows or time.monotonic() > end:
                break
            time.sleep(0.3)
    by_reason: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_reason.setdefault(row.reason, {"reason": row.reason, "orders": 0, "quantity": 0})
        entry["orders"] += 1
        entry["quantity"] += row.cancelled_quantity
    return sorted(by_reason.values(), key=lambda e: str(e["reason"]))


def _findings(database_url: str, deadline_s: float = 15.0) -> list[dict[str, Any]]:
    end = time.monotonic() + deadline_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(FINDINGS_QUERY).fetchall()
            if rows or time.monotonic() > end:
                break
            time.sleep(0.3)
    return [dict(zip(("rule", "severity", "account", "symbol", "summary"), r, strict=True)) for r in rows]


def _archive_objects(aws_url: str, deadline_s: float = 10.0) -> int:
    s3 = aws_client("s3", aws_url)
    end = time.monotonic() + deadline_s
    while True:
        total = 0
        for bucket in s3.list_buckets()["Buckets"]:
            if "archive" in bucket["Name"]:
                total += s3.list_objects_v2(Bucket=bucket["Name"]).get("KeyCount", 0)
        if total or time.monotonic() > end:
            return total
        time.sleep(0.5)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return nearest_rank(sorted(values), q)


def run_demo(
    api_url: str,
    aws_url: str,
    database_url: str,
    metrics_url: str,
    credentials_file: Path,
    say: Say = print,
    gateway_url: str = "",
) -> DemoResult:
    say("\n== Trading session: alice and bob through the REST API ==")
    watcher = None
    if gateway_url:
        from meridian_local.demo.stream import CHANNELS, StreamWatcher  # noqa: PLC0415

        say(f"  alice streams {', '.join(CHANNELS)} from {gateway_url}")
        watcher = StreamWatcher(gateway_url, credentials_file, say).start()
    session = Session(api_url, credentials_file, say)
    session.trade()
    if watcher is not None:
        say(f"  alice's stream carried {watcher.stop()} messages during the session")
    result = session.result
    trades = len({f["execution_id"] for f in result.fills})

    say("\n== Fills ==")
    say(render(result.fills, ["account", "symbol", "side", "price", "quantity", "liquidity", "execution_id"]))

    say(f"\n== Positions (PostgreSQL ledger; waiting for {trades} trades) ==")
    rows = _wait_for_ledger(database_url, trades)
    result.positions = [
        {
            "account": r.account,
            "symbol": r.symbol,
            "quantity": r.quantity,
            "average_price": _instrument(r.symbol).average_text(r.average_price),
            "realized_pnl": _instrument(r.symbol).price_text(r.realized_pnl),
        }
        for r in rows
    ]
    say(render(result.positions, ["account", "symbol", "quantity", "average_price", "realized_pnl"]))

    say("\n== Orders that ended without trading everything (PostgreSQL ledger, by reason) ==")
    result.cancellations = _cancellations(database_url)
    say(render(result.cancellations, ["reason", "orders", "quantity"]))

    say("\n== Market data (DynamoDB via GET /marketdata) ==")
    for symbol in ("AAPL", "MSFT"):
        data = session.alice.market_data(symbol)
        result.market_data[symbol] = data
        say(
            f"  {symbol}: bid {_side(data.bid_price, data.bid_quantity)}  "
            f"ask {_side(data.ask_price, data.ask_quantity)}  "
            f"last trades {len(data.get('last_trades') or data.get('trades') or [])}"
        )

    say("\n== Surveillance findings ==")
    result.findings = _findings(database_url)
    say(render(result.findings, ["rule", "severity", "account", "symbol", "summary"]))

    result.archive_objects = _archive_objects(aws_url)
    say(f"\n== Firehose archive in S3: {result.archive_objects} object(s) ==")

    result.node_latency_us = _node_latency(metrics_url)
    lat = result.api_latency_ms
    say("\n== Latency ==")
    mean = statistics.fmean(lat) if lat else 0.0
    say(
        f"  POST /orders round trip (local API Gateway + Lambda + node): p50 {_pct(lat, 0.5):.1f} ms  "
        f"p99 {_pct(lat, 0.99):.1f} ms  mean {mean:.1f} ms over {len(lat)} orders"
    )
    trips = sorted(result.aws_round_trips)
    if trips:
        say(
            f"  AWS round trips each POST /orders waited for (one after another): median "
            f"{statistics.median(trips):g}, most {trips[-1]} over {len(trips)} orders "
            "(make bench-api models each at 4 ms)"
        )
    node = result.node_latency_us
    say(
        "  matching node order->ack (journal fsync included): "
        + "  ".join(f"{k} {v:.0f} us" for k, v in sorted(node.items()))
    )
    return result


def _side(price: str | None, quantity: int | None) -> str:
    """One side of the top of book as ``price x quantity``, or ``none`` for an empty side."""
    return "none" if price is None else f"{price} x {quantity}"
