"""Market data from the MarketData table, positions and trades from the ledger, halts and health."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from orders_api.dal.ledger import PostgresLedgerReader
from orders_api.services import Services

from meridian.events import TradeExecuted
from meridian.ledger import record_trade
from tests.unit.orders_api.harness import ACCOUNT_A, ACCOUNT_B, OPERATOR, RISK, TRADER_A, TRADER_B, Answer

Api = Callable[..., Answer]


def put_book(clients: dict[str, Any], table: str) -> None:
    clients["dynamodb"].put_item(
        TableName=table,
        Item={
            "pk": {"S": "SYMBOL#AAPL"},
            "sk": {"S": "BOOK"},
            "bid_price": {"N": "189.5"},
            "bid_quantity": {"N": "10"},
            "ask_price": {"N": "190.25"},
            "ask_quantity": {"N": "7"},
            "bids": {"L": [{"L": [{"N": "189.5"}, {"N": "10"}]}]},
            "asks": {"L": [{"L": [{"N": "190.25"}, {"N": "7"}]}]},
            "node_seq": {"N": "42"},
            "updated_at": {"S": "2026-11-25T12:00:00Z"},
        },
    )
    for seq, price in ((40, "190"), (41, "190.5")):
        clients["dynamodb"].put_item(
            TableName=table,
            Item={
                "pk": {"S": "SYMBOL#AAPL"},
                "sk": {"S": f"TRADE#{seq:020d}"},
                "price": {"N": price},
                "quantity": {"N": "3"},
                "execution_id": {"S": f"n1-{seq}"},
                "occurred_at": {"S": "2026-11-25T12:00:00Z"},
            },
        )


def test_market_data_reads_book_and_latest_trades_first(
    api: Api, clients: dict[str, Any], svc: Services
) -> None:
    put_book(clients, svc.settings.market_data_table)
    answer = api("GET", "/marketdata/AAPL", query="trades=5")
    assert answer.status == 200
    assert answer.body["bid_price"] == "189.50"  # on the instrument's grid, as stored 189.5
    assert answer.body["asks"] == [{"price": "190.25", "quantity": 7}]
    assert [t["price"] for t in answer.body["last_trades"]] == ["190.50", "190.00"]
    assert [t["execution_id"] for t in answer.body["last_trades"]] == ["n1-41", "n1-40"]
    assert api("GET", "/marketdata/MSFT").body["bids"] == []
    assert api("GET", "/marketdata/ZZZ").status == 404


def test_last_trade_sets_the_price_band(api: Api, clients: dict[str, Any], svc: Services) -> None:
    put_book(clients, svc.settings.market_data_table)  # last trade 190.50; AAPL's band is 10%
    far = api("POST", "/orders", body={"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "171.00"})
    assert far.body["error"] == "PRICE_BAND"


def test_halt_refuses_orders_until_resumed(api: Api, svc: Services) -> None:
    body = {"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "190.00"}
    assert api("POST", "/admin/halt", who=TRADER_A, body={"symbol": "AAPL"}).status == 403
    halted = api("POST", "/admin/halt", who=OPERATOR, body={"symbol": "AAPL", "reason": "news"})
    assert halted.status == 200
    assert halted.body["halted"] is True
    assert halted.body["node_acknowledged"] is True
    assert api("POST", "/orders", body=body).body["error"] == "TRADING_HALTED"
    assert api("POST", "/admin/resume", who=RISK, body={"symbol": "AAPL"}).status == 200
    assert api("POST", "/orders", body=body).status == 201
    assert api("POST", "/admin/halt", who=OPERATOR, body={}).body["scope"] == "GLOBAL"
    assert api("POST", "/orders", body=body).body["error"] == "TRADING_HALTED"


def test_health(api: Api) -> None:
    answer = api("GET", "/health", who=OPERATOR)
    assert answer.body == {"status": "ok", "version": "1.0.0", "matching_node": "up"}


def trade(n: int, buyer: str, seller: str) -> TradeExecuted:
    return TradeExecuted(
        event_id=f"n1-{n}",
        occurred_at=datetime(2026, 11, 25, 12, n, tzinfo=UTC),
        execution_id=f"n1-{n}",
        symbol="AAPL",
        price=Decimal("190.5"),
        quantity=10,
        aggressor_side="BUY",
        buy_order_id=f"b{n}",
        sell_order_id=f"s{n}",
        buy_account=buyer,
        sell_account=seller,
        buy_client_order_id=f"cb{n}",
        sell_client_order_id=f"cs{n}",
        node_seq=n,
    )


@pytest.fixture
def ledger(ledger_conn: psycopg.Connection[Any], svc: Services) -> psycopg.Connection[Any]:
    for n in range(1, 6):
        record_trade(ledger_conn, trade(n, ACCOUNT_A, ACCOUNT_B))
    record_trade(ledger_conn, trade(6, "ACC-C", ACCOUNT_B))
    svc.ledger = PostgresLedgerReader(lambda: ledger_conn)
    return ledger_conn


def test_positions_and_trades_come_from_the_ledger(api: Api, ledger: psycopg.Connection[Any]) -> None:
    mine = api("GET", "/positions")
    assert mine.status == 200
    assert mine.body["positions"] == [
        {
            "account": ACCOUNT_A,
            "symbol": "AAPL",
            "quantity": 50,
            "average_price": "190.5000",
            "realized_pnl": "0.00",
            "updated_at": mine.body["positions"][0]["updated_at"],
        }
    ]
    assert len(api("GET", "/positions", who=RISK).body["positions"]) == 3
    page = api("GET", "/trades", query="limit=3")
    assert [t["execution_id"] for t in page.body["trades"]] == ["n1-5", "n1-4", "n1-3"]
    rest = api("GET", "/trades", query=f"limit=3&next_token={page.body['next_token']}")
    assert [t["execution_id"] for t in rest.body["trades"]] == ["n1-2", "n1-1"]
    assert rest.body["next_token"] is None
    assert api("GET", "/trades", query="next_token=zzz").body["error"] == "INVALID_NEXT_TOKEN"
    assert len(api("GET", "/trades", who=RISK).body["trades"]) == 6


def test_a_trader_sees_their_side_of_a_trade_and_not_the_counterparty(
    api: Api, ledger: psycopg.Connection[Any]
) -> None:
    bought = api("GET", "/trades", query="limit=1").body["trades"][0]  # ACC-A bought from ACC-B
    assert (bought["buy_account"], bought["buy_order_id"]) == (ACCOUNT_A, "b5")
    assert (bought["sell_account"], bought["sell_order_id"]) == (None, None)
    sold = api("GET", "/trades", who=TRADER_B, query="limit=1").body["trades"][0]
    assert (sold["buy_account"], sold["buy_order_id"]) == (None, None)
    assert (sold["sell_account"], sold["sell_order_id"]) == (ACCOUNT_B, "s6")
    assert ACCOUNT_A not in str(api("GET", "/trades", who=TRADER_B).body)
    officer = api("GET", "/trades", who=RISK, query="limit=1").body["trades"][0]  # risk keeps both sides
    assert (officer["buy_account"], officer["sell_account"]) == ("ACC-C", ACCOUNT_B)
    assert (officer["buy_order_id"], officer["sell_order_id"]) == ("b6", "s6")


def test_position_limit_reads_the_ledger(
    api: Api, ledger: psycopg.Connection[Any], clients: dict[str, Any], svc: Services
) -> None:
    from tests.orders_api_fixtures import set_risk_limits  # noqa: PLC0415

    set_risk_limits(
        clients["dynamodb"], svc.settings, ACCOUNT_A, max_order_quantity=1000, max_notional=Decimal(10**6),
        max_open_orders=10, position_limits={"AAPL": 60},
    )  # fmt: skip
    body = {"symbol": "AAPL", "side": "BUY", "quantity": 11, "price": "190.00"}
    assert api("POST", "/orders", body=body).body["error"] == "POSITION_LIMIT"
    assert api("POST", "/orders", body={**body, "quantity": 10}).status == 201


def test_a_path_ending_in_a_newline_is_no_route_of_the_api() -> None:
    # Routes are anchored at the real end of the path: `$` alone also matches before a final
    # newline, which sent GET /orders/%0A to the list route.
    from orders_api.api import app  # noqa: PLC0415

    patterns = [route.rule for route in app._static_routes + app._dynamic_routes]
    assert patterns
    assert not any(p.match("/orders/\n") for p in patterns)
    assert any(p.match("/orders") for p in patterns)
    assert any(p.match("/orders/ord_1") for p in patterns)
