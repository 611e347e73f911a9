"""What an order's answer says about how it ended: cancel reasons, average prices, prices on the
tick grid, stop orders, and every fill of an order (through the real handler and the real engine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from orders_api import services
from orders_api.dal.interfaces import TradePageRows
from orders_api.services import Services

from meridian.ledger.queries import TradeRow
from tests.orders_api_fixtures import EmptyLedger
from tests.unit.orders_api.harness import TRADER_A, TRADER_B, Answer

Api = Callable[..., Answer]


def order(side: str, qty: int, price: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": "AAPL", "side": side, "quantity": qty, **extra}
    if price is not None:
        body["price"] = price
    return body


def test_an_unfillable_fok_says_why_it_ended(api: Api) -> None:
    answer = api("POST", "/orders", body=order("BUY", 10, "190.00", time_in_force="FOK"))
    assert answer.status == 201
    assert (answer.body["status"], answer.body["cancel_reason"]) == ("CANCELLED", "FOK_UNFILLED")
    assert answer.body["reject_reason"] is None
    stored = api("GET", f"/orders/{answer.body['order_id']}").body
    assert stored["cancel_reason"] == "FOK_UNFILLED"


def test_a_market_order_stopped_by_self_trade_prevention_says_so(api: Api) -> None:
    resting = api("POST", "/orders", body=order("SELL", 5, "190.00")).body
    answer = api("POST", "/orders", body={**order("BUY", 5), "type": "MARKET"})
    assert (answer.body["status"], answer.body["cancel_reason"]) == ("CANCELLED", "SELF_TRADE")
    assert api("GET", f"/orders/{resting['order_id']}").body["status"] == "NEW"


def test_cancel_oldest_records_the_resting_orders_reason(api: Api) -> None:
    resting = api("POST", "/orders", body=order("SELL", 5, "190.00")).body
    api("POST", "/orders", body=order("BUY", 5, "190.00", self_trade_prevention="CANCEL_OLDEST"))
    stored = api("GET", f"/orders/{resting['order_id']}").body
    assert (stored["status"], stored["cancel_reason"]) == ("CANCELLED", "SELF_TRADE")


def test_no_liquidity_and_ioc_remainders_and_user_cancels(api: Api) -> None:
    market = api("POST", "/orders", body={**order("BUY", 5), "type": "MARKET"}).body
    assert market["cancel_reason"] == "NO_LIQUIDITY"
    api("POST", "/orders", body=order("SELL", 3, "190.00"), who=TRADER_B)
    ioc = api("POST", "/orders", body=order("BUY", 5, "190.00", time_in_force="IOC")).body
    assert (ioc["filled_quantity"], ioc["cancel_reason"]) == (3, "IOC_REMAINDER")
    resting = api("POST", "/orders", body=order("BUY", 5, "189.00")).body
    cancelled = api("DELETE", f"/orders/{resting['order_id']}").body
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("CANCELLED", "USER")
    assert resting["cancel_reason"] is None


def test_average_price_of_the_aggressor_and_of_the_resting_order(api: Api) -> None:
    first = api("POST", "/orders", body=order("SELL", 1, "190.00"), who=TRADER_B).body
    api("POST", "/orders", body=order("SELL", 2, "190.50"), who=TRADER_B)
    buy = api("POST", "/orders", body=order("BUY", 3, "191.00")).body
    assert [f["price"] for f in buy["fills"]] == ["190.00", "190.50"]
    assert buy["average_price"] == "190.3333"  # (190.00 + 2 x 190.50) / 3, two digits finer
    assert api("GET", f"/orders/{buy['order_id']}").body["average_price"] == "190.3333"
    seller = api("GET", f"/orders/{first['order_id']}", who=TRADER_B).body  # filled by another request
    assert (seller["status"], seller["average_price"]) == ("FILLED", "190.0000")
    rested = api("POST", "/orders", body=order("BUY", 1, "189.00")).body
    assert rested["average_price"] is None


def test_prices_print_on_the_tick_grid(api: Api) -> None:
    answer = api("POST", "/orders", body=order("BUY", 1, "190")).body
    assert answer["price"] == "190.00"
    listed = api("GET", "/orders").body["orders"]
    assert {o["price"] for o in listed} == {"190.00"}


def test_a_stop_limit_order_waits_then_fires_on_a_trade_at_its_stop(api: Api) -> None:
    stop = api(
        "POST",
        "/orders",
        body=order("BUY", 2, "191.00", type="STOP_LIMIT", stop_price="190.50"),
        who=TRADER_B,
    )
    assert stop.status == 201
    assert (stop.body["status"], stop.body["stop_price"], stop.body["leaves_quantity"]) == (
        "PENDING_TRIGGER",
        "190.50",
        2,
    )
    replace = api("PATCH", f"/orders/{stop.body['order_id']}", body={"price": "192.00"}, who=TRADER_B)
    assert (replace.status, replace.body["error"]) == (409, "REPLACE_NOT_ALLOWED")
    api("POST", "/orders", body=order("SELL", 1, "190.50"))
    api("POST", "/orders", body=order("SELL", 2, "190.75"))
    trigger = api("POST", "/orders", body=order("BUY", 1, "190.50"), who=TRADER_B)  # trades at 190.50
    assert trigger.body["status"] == "FILLED"
    fired = api("GET", f"/orders/{stop.body['order_id']}", who=TRADER_B).body
    assert (fired["status"], fired["filled_quantity"], fired["average_price"]) == ("FILLED", 2, "190.7500")


def test_a_waiting_stop_is_cancelled_like_any_order(api: Api) -> None:
    stop = api("POST", "/orders", body=order("SELL", 2, type="STOP", stop_price="180.00")).body
    assert stop["status"] == "PENDING_TRIGGER"
    cancelled = api("DELETE", f"/orders/{stop['order_id']}").body
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("CANCELLED", "USER")


def test_stop_order_requests_are_checked(api: Api) -> None:
    cases = [
        order("BUY", 1, "190.00", type="STOP_LIMIT"),  # no stop price
        order("BUY", 1, "190.00", type="STOP", stop_price="190.00"),  # a STOP takes no price
        order("BUY", 1, type="STOP", stop_price="190.00", post_only=True),
        order("BUY", 1, "190.00", stop_price="190.00"),  # a LIMIT takes no stop price
    ]
    for body in cases:
        answer = api("POST", "/orders", body=body)
        assert answer.status == 422, body
    off_grid = api("POST", "/orders", body=order("BUY", 1, type="STOP", stop_price="190.001"))
    assert (off_grid.status, off_grid.body["error"]) == (422, "TICK_SIZE")
    assert off_grid.body["details"][0]["loc"] == ["body", "stop_price"]


def _trade(
    execution_id: str,
    price: str,
    quantity: int,
    aggressor: Literal["BUY", "SELL"],
    buy: str,
    sell: str,
    seq: int,
) -> TradeRow:
    return TradeRow(
        execution_id=execution_id,
        symbol="AAPL",
        price=Decimal(price),
        quantity=quantity,
        aggressor_side=aggressor,
        buy_account="ACC-A",
        sell_account="ACC-B",
        buy_order_id=buy,
        sell_order_id=sell,
        buy_client_order_id="",
        sell_client_order_id="",
        node_seq=seq,
        occurred_at=datetime(2026, 1, 2, tzinfo=UTC),
        ledger_seq=seq,
    )


class Fills(EmptyLedger):
    """A ledger holding two trades of one order (the route's own query is tested on PostgreSQL)."""

    def __init__(self, order_id: str) -> None:
        self.rows = [
            _trade("n1-1", "190.5", 2, "SELL", order_id, "o2", 1),
            _trade("n1-2", "190.25", 1, "BUY", order_id, "o3", 2),
        ]

    def order_fills(self, order_id: str) -> list[TradeRow]:
        return [r for r in self.rows if order_id in (r.buy_order_id, r.sell_order_id)]

    def trades(
        self, account: str | None, symbol: str | None, limit: int, cursor: str | None
    ) -> TradePageRows:
        return TradePageRows(self.rows, None)


def test_every_fill_of_an_order_comes_from_the_ledger(api: Api, svc: Services) -> None:
    mine = api("POST", "/orders", body=order("BUY", 3, "189.00")).body["order_id"]
    services.use(replace(svc, ledger=Fills(mine)))
    answer = api("GET", f"/orders/{mine}/fills")
    assert answer.status == 200
    assert [(f["execution_id"], f["price"], f["quantity"], f["liquidity"]) for f in answer.body["fills"]] == [
        ("n1-1", "190.50", 2, "MAKER"),  # a SELL aggressor hit this resting buy
        ("n1-2", "190.25", 1, "TAKER"),
    ]
    assert api("GET", f"/orders/{mine}/fills", who=TRADER_B).status == 404  # not theirs
    assert api("GET", "/orders/ord_nothing/fills").status == 404
    assert api("GET", f"/orders/{mine}/fills", who=TRADER_A).body["order_id"] == mine
