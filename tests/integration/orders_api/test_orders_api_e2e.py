"""The order API end to end: a real matching node, moto in server mode, PostgreSQL, the local API
Gateway over HTTP, and SigV4-signed requests from the Python client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer
from orders_api import aws, config, services
from orders_api.openapi_export import document

from meridian.events import TradeExecuted
from meridian.iam.sigv4 import LocalCredential
from meridian.ledger import record_trade
from meridian_client import ApiError, MeridianClient
from meridian_hotpath.process import NodeProcess
from meridian_local.apigateway.apigw import ApiGateway, serve_in_thread, template_access
from meridian_local.apigateway.order_function import load_handler
from meridian_local.endpoint.moto_server import reset
from tests.orders_api_fixtures import role_session_arn, seed_order_api

pytestmark = pytest.mark.integration

TRADER_A = role_session_arn("meridian-trader-dev", "alice")
TRADER_B = role_session_arn("meridian-trader-dev", "bob")
KEYS = {"AKIDINTEGRATIONA0001": (TRADER_A, "ACC-A"), "AKIDINTEGRATIONB0002": (TRADER_B, "ACC-B")}


@pytest.fixture
def platform(
    tmp_path: Path, ledger_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, MeridianClient]]:
    node = NodeProcess.start(tmp_path / "node")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()  # the OS picks the port as it binds
    _, moto_port = moto.get_host_and_port()
    reset(f"http://127.0.0.1:{moto_port}")  # moto's backends live in-process: start from nothing
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MERIDIAN_ROUTES": json.dumps({"default": f"{node.host}:{node.port}"}),
        "DATABASE_URL": ledger_database_url,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Meridian",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config.settings.cache_clear()
    aws.reset_clients()
    services.reset()
    settings = config.settings()
    clients = {name: aws.client(name) for name in ("dynamodb", "events")}
    seed_order_api(clients, settings, [(who, "trader", account) for who, account in KEYS.values()])
    credentials = {
        key: LocalCredential(f"secret-{key}", who, who.rsplit("/", 1)[1]) for key, (who, _) in KEYS.items()
    }
    server = serve_in_thread(ApiGateway(load_handler(), credentials, document, template_access()))
    url = f"http://127.0.0.1:{server.port}"
    try:
        yield {
            account: MeridianClient(url, Credentials(key, f"secret-{key}"))
            for key, (_, account) in KEYS.items()
        }
    finally:
        server.shutdown()
        moto.stop()
        node.terminate()
        services.reset()
        aws.reset_clients()
        config.settings.cache_clear()
        from meridian import db  # noqa: PLC0415

        db.reset_shared_connection()


def test_submit_fill_replace_cancel_retry_and_isolation(platform: dict[str, MeridianClient]) -> None:
    alice, bob = platform["ACC-A"], platform["ACC-B"]
    resting = bob.submit_order("AAPL", "SELL", 10, "190.00", idempotency_key="bob-1")
    assert resting["status"] == "NEW"
    taker = alice.submit_order("AAPL", "BUY", 4, "190.00", idempotency_key="alice-1")
    assert taker["status"] == "FILLED"
    assert re.fullmatch(r"\d+-1", taker["fills"][0]["execution_id"])  # <node number>-<its first trade>
    retry = alice.submit_order("AAPL", "BUY", 4, "190.00", idempotency_key="alice-1")
    assert retry["order_id"] == taker["order_id"]
    assert bob.get_order(resting["order_id"])["leaves_quantity"] == 6

    bid = alice.submit_order("AAPL", "BUY", 5, "189.00", client_order_id="alice-bid")
    assert alice.replace_order(bid["order_id"], quantity=3, price="189.50")["price"] == "189.50"
    for attempt in (bob.get_order, bob.cancel_order):
        with pytest.raises(ApiError) as hidden:
            attempt(bid["order_id"])
        assert hidden.value.status == 404
    assert alice.cancel_order(bid["order_id"])["status"] == "CANCELLED"
    assert [o["order_id"] for o in alice.list_orders(status="CANCELLED")["orders"]] == [bid["order_id"]]
    assert all(o["account"] == "ACC-B" for o in bob.list_orders()["orders"])


def test_positions_and_trades_from_the_ledger(
    platform: dict[str, MeridianClient], ledger_database_url: str
) -> None:
    alice = platform["ACC-A"]
    with psycopg.connect(ledger_database_url, autocommit=True) as conn:
        record_trade(conn, _trade())
    positions = alice.positions()["positions"]
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("AAPL", 7)]
    assert [t["execution_id"] for t in alice.trades()["trades"]] == ["1-1"]
    assert alice.market_data("AAPL")["symbol"] == "AAPL"


def _trade() -> TradeExecuted:
    fields: dict[str, Any] = {
        "event_id": "1-1",
        "occurred_at": datetime.now(UTC),
        "execution_id": "1-1",
        "symbol": "AAPL",
        "price": Decimal("190.00"),
        "quantity": 7,
        "aggressor_side": "BUY",
        "buy_order_id": "ord_a",
        "sell_order_id": "ord_b",
        "buy_account": "ACC-A",
        "sell_account": "ACC-B",
        "buy_client_order_id": "a",
        "sell_client_order_id": "b",
        "node_seq": 1,
    }
    return TradeExecuted(**fields)
