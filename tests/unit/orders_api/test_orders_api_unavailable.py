"""What the order API answers when what it depends on fails: the node, the ledger, a parallel read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from orders_api import services
from orders_api.concurrency import together
from orders_api.dal.hotpath import NodeUnavailable
from orders_api.services import Services

from meridian.protocol import Message
from tests.orders_api_fixtures import EmptyLedger, EngineGateway
from tests.unit.orders_api.harness import OPERATOR, Answer

Api = Callable[..., Answer]
BUY = {"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "190.00"}


def test_a_halt_the_nodes_cannot_hear_is_recorded_and_says_so(
    api: Api, gateway: EngineGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(node: str, request: Message) -> Any:
        raise NodeUnavailable("connection refused")

    monkeypatch.setattr(gateway, "send_to", unreachable)
    halted = api("POST", "/admin/halt", who=OPERATOR, body={"reason": "drill"})
    assert halted.status == 200
    assert (halted.body["halted"], halted.body["node_acknowledged"]) == (True, False)
    refused = api("POST", "/orders", body=BUY)  # the API's own control holds regardless
    assert refused.body["error"] == "TRADING_HALTED"


class _DownLedger(EmptyLedger):
    def positions(self, account: str | None, symbol: str | None = None) -> list[Any]:
        raise ConnectionError("the ledger database is down")


def test_limits_that_cannot_be_checked_refuse_the_order(api: Api, svc: Services) -> None:
    services.use(replace(svc, ledger=_DownLedger()))
    refused = api("POST", "/orders", body=BUY)
    assert refused.status == 503
    assert refused.body["error"] == "LEDGER_UNAVAILABLE"
    services.use(svc)
    assert api("POST", "/orders", body=BUY).status == 201  # nothing was reserved by the refusal


def test_together_waits_for_the_other_read_before_an_error_propagates() -> None:
    finished = threading.Event()

    def slow() -> int:
        finished.wait(0.05)
        finished.set()
        return 2

    def failing() -> int:
        raise KeyError("first read failed")

    with pytest.raises(KeyError):
        together(failing, slow)
    assert finished.is_set()
    assert together(lambda: 1, lambda: 2) == (1, 2)
