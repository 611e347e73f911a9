"""An account's limits hold however many orders arrive at once, and its exposure follows its orders.

Each order reserves its exposure (open orders, position with open orders, open notional) in the
conditional write that creates it; fills, cancels and rejects give it back as the node's answers
are recorded. The node here is the real engine, handling one request at a time as a node does;
moto's writes are atomic as DynamoDB's are (``meridian_local.endpoint.moto_transactions``).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from orders_api.auth import Caller
from orders_api.dal.hotpath import NodeAnswer
from orders_api.dal.interfaces import OrderQuery
from orders_api.errors import ApiError
from orders_api.logic import manage, submit
from orders_api.models import OrderRequest, ReplaceRequest
from orders_api.services import Services

from meridian.exposure import Exposure
from meridian.protocol import Message
from tests.orders_api_fixtures import EngineGateway, set_risk_limits
from tests.unit.orders_api.harness import ACCOUNT_A, ACCOUNT_B, TRADER_A, TRADER_B, Answer

T = TypeVar("T")
Api = Callable[..., Answer]
ALICE = Caller(TRADER_A, "trader", ACCOUNT_A)
BOB = Caller(TRADER_B, "trader", ACCOUNT_B)


class OneAtATimeEngine(EngineGateway):
    """The matching engine behind a lock: a node handles its requests one after another."""

    def __init__(self) -> None:
        super().__init__(node="node-1")
        self._lock = threading.Lock()

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        with self._lock:
            return super().send_to(node, request)


@pytest.fixture
def engine(svc: Services) -> OneAtATimeEngine:
    gateway = OneAtATimeEngine()
    svc.gateway = gateway
    return gateway


def limits(svc: Services, clients: dict[str, Any], account: str, **values: Any) -> None:
    base: dict[str, Any] = {
        "max_order_quantity": 1000,
        "max_notional": Decimal(10**7),
        "max_open_orders": 1000,
    }
    base.update(values)
    set_risk_limits(clients["dynamodb"], svc.settings, account, **base)


def at_once(count: int, work: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(work, range(count)))


def place(svc: Services, caller: Caller, side: str, quantity: int, price: str, cid: str) -> int | str:
    request = OrderRequest.model_validate(
        {"symbol": "AAPL", "side": side, "quantity": quantity, "price": price, "client_order_id": cid}
    )
    try:
        return submit.submit_order(svc, caller, request, None, None).status_code
    except ApiError as refused:
        return refused.code


def exposure_item(clients: dict[str, Any], svc: Services, account: str) -> dict[str, Decimal]:
    item = (
        clients["dynamodb"]
        .get_item(TableName=svc.settings.exposure_table, Key={"account": {"S": account}}, ConsistentRead=True)
        .get("Item", {})
    )
    return {name: Decimal(value["N"]) for name, value in item.items() if "N" in value and Decimal(value["N"])}


def stored_sum(svc: Services, account: str) -> dict[str, Decimal]:
    """The sum of the account's stored orders' contributions, as the exposure item spells it."""
    total = Exposure()
    for record in svc.orders.list(OrderQuery(account=account, limit=1000)).records:
        total += record.exposure(svc.instruments[record.symbol])
    values: dict[str, Decimal] = {"open_orders": Decimal(total.open_orders), "open_notional": total.notional}
    values.update({f"long:{s}": Decimal(q) for s, q in total.long.items()})
    values.update({f"short:{s}": Decimal(q) for s, q in total.short.items()})
    return {k: v for k, v in values.items() if v}


def test_parallel_orders_never_pass_the_open_order_limit(
    svc: Services, clients: dict[str, Any], engine: OneAtATimeEngine
) -> None:
    limits(svc, clients, ACCOUNT_A, max_open_orders=10)
    results = at_once(40, lambda i: place(svc, ALICE, "BUY", 1, "185.00", f"open-{i}"))
    assert results.count(201) == 10
    assert results.count("MAX_OPEN_ORDERS") == 30
    assert len(svc.orders.list(OrderQuery(account=ACCOUNT_A, status="NEW", limit=100)).records) == 10
    assert len(engine.sent) == 10  # the refused ones never reached the node


def test_parallel_orders_never_pass_the_position_limit_with_what_is_open(
    svc: Services, clients: dict[str, Any], engine: OneAtATimeEngine
) -> None:
    limits(svc, clients, ACCOUNT_A, position_limits={"AAPL": 100})
    results = at_once(40, lambda i: place(svc, ALICE, "BUY", 10, "185.00", f"pos-{i}"))
    assert results.count(201) == 10  # 10 x 10 open to buy: a position of 100 if all fill
    assert results.count("POSITION_LIMIT") == 30
    assert exposure_item(clients, svc, ACCOUNT_A)["long:AAPL"] == 100
    # Selling is not limited by the open buys: it can only reduce the position.
    assert place(svc, ALICE, "SELL", 50, "195.00", "pos-sell") == 201


def test_fills_cancels_and_rejects_give_back_what_was_reserved(
    svc: Services, clients: dict[str, Any], engine: OneAtATimeEngine
) -> None:
    assert place(svc, ALICE, "BUY", 10, "190.00", "rel-1") == 201
    assert exposure_item(clients, svc, ACCOUNT_A) == {
        "open_orders": 1, "open_notional": Decimal("1900"), "long:AAPL": 10,
    }  # fmt: skip
    assert place(svc, BOB, "SELL", 4, "190.00", "rel-2") == 201  # fills 4 of alice's 10
    assert exposure_item(clients, svc, ACCOUNT_A) == {
        "open_orders": 1, "open_notional": Decimal("1140"), "long:AAPL": 10, "short:AAPL": -4,
    }  # fmt: skip
    assert exposure_item(clients, svc, ACCOUNT_B) == {"long:AAPL": -4, "short:AAPL": 4}
    alice_order = svc.orders.list(OrderQuery(account=ACCOUNT_A, status="PARTIALLY_FILLED")).records[0]
    manage.cancel_order(svc, ALICE, alice_order.order_id)
    assert exposure_item(clients, svc, ACCOUNT_A) == {"long:AAPL": 4, "short:AAPL": -4}  # the 4 bought
    rejected = OrderRequest.model_validate(
        {"symbol": "AAPL", "side": "SELL", "quantity": 5, "price": "180.00", "client_order_id": "rel-3",
         "post_only": True},
    )  # fmt: skip
    assert place(svc, BOB, "BUY", 5, "181.00", "rel-4") == 201
    assert submit.submit_order(svc, ALICE, rejected, None, None).status_code == 422  # post-only would cross
    assert exposure_item(clients, svc, ACCOUNT_A) == {"long:AAPL": 4, "short:AAPL": -4}


def test_under_parallel_trading_each_exposure_is_its_orders_and_within_its_limits(
    svc: Services, clients: dict[str, Any], engine: OneAtATimeEngine
) -> None:
    limit = 60
    for account in (ACCOUNT_A, ACCOUNT_B):
        limits(svc, clients, account, max_open_orders=8, position_limits={"AAPL": limit})
    plan = random.Random(19)
    steps = [
        (plan.choice((ALICE, BOB)), plan.choice(("BUY", "SELL")), plan.randint(1, 9), plan.randint(-3, 3))
        for _ in range(120)
    ]

    def trade(i: int) -> None:
        caller, side, quantity, offset = steps[i]
        place(svc, caller, side, quantity, f"{190 + offset * 0.05:.2f}", f"mix-{i}")
        page = svc.orders.list(OrderQuery(account=caller.account, status="NEW", limit=5)).records
        if page and i % 3 == 0:  # pull one of the caller's open orders
            with contextlib.suppress(ApiError):  # filled or cancelled meanwhile
                manage.cancel_order(svc, caller, page[-1].order_id)
        elif page and i % 3 == 1:  # or make one larger (its growth is reserved before the node)
            change = ReplaceRequest(quantity=page[0].leaves_quantity + 2)
            with contextlib.suppress(ApiError):  # over a limit, filled or cancelled meanwhile
                manage.replace_order(svc, caller, page[0].order_id, change)

    at_once(len(steps), trade)
    for account in (ACCOUNT_A, ACCOUNT_B):
        held = exposure_item(clients, svc, account)
        assert held == stored_sum(svc, account)  # each fill and cancel counted exactly once
        assert held.get("open_orders", 0) <= 8
        assert held.get("long:AAPL", 0) <= limit
        assert held.get("short:AAPL", 0) <= limit
