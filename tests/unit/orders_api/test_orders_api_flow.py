"""Orders end to end through the real handler, moto and the in-process matching engine."""

from __future__ import annotations

from collections.abc import Callable

from tests.unit.orders_api.harness import ACCOUNT_A, TRADER_B, Answer

Api = Callable[..., Answer]


def limit(side: str, qty: int, price: str, **extra: object) -> dict[str, object]:
    return {"symbol": "AAPL", "side": side, "quantity": qty, "price": price, **extra}


def test_submit_rests_then_trades_against_another_account(api: Api) -> None:
    first = api("POST", "/orders", body=limit("SELL", 10, "190.00"), who=TRADER_B)
    assert first.status == 201, first.body
    assert first.body["status"] == "NEW"
    second = api("POST", "/orders", body=limit("BUY", 4, "190.00"))
    assert second.status == 201, second.body
    assert second.body["status"] == "FILLED"
    assert second.body["account"] == ACCOUNT_A
    assert [f["quantity"] for f in second.body["fills"]] == [4]
    assert second.body["fills"][0]["execution_id"] == "0-1"  # node number 0, its first trade
    resting = api("GET", f"/orders/{first.body['order_id']}", who=TRADER_B)
    assert resting.body["status"] == "PARTIALLY_FILLED"
    assert resting.body["leaves_quantity"] == 6
