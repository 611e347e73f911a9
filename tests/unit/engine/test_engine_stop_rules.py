"""Stop and stop-limit orders, one test per rule of ``reference.py``'s docstring, on both engines.

Every scenario runs on the native core and on the reference model, and their answers must agree
frame for frame (the property tests do the same on random streams).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from meridian.domain import CancelReason, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    Ack,
    Admin,
    AdminAction,
    Cancel,
    CancelAck,
    Fill,
    Flag,
    Message,
    NewStopOrder,
    Reject,
    Replace,
    decode_stream,
    encode,
)
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from tests.unit.engine.engine_streams import INSTRUMENTS, Request, new_order

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, DAY, IOC, FOK = TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK
Engine = MatchingEngine | ReferenceEngine


def stop(
    request_id: int,
    side: Side,
    quantity: int,
    stop_price: int,
    price: int = 0,
    *,
    account: str = "ACC2",
    tif: TimeInForce = GTC,
    flags: int = 0,
    symbol: str = "AAA",
    client_order_id: str | None = None,
) -> NewStopOrder:
    coid = f"S{request_id}" if client_order_id is None else client_order_id
    kind = LIMIT if price else MARKET
    return NewStopOrder(
        request_id, coid, account, symbol, side, kind, tif, flags, quantity, price, stop_price
    )


class Both:
    """The native core and the reference model fed the same requests; answers must agree."""

    def __init__(self) -> None:
        self.native, self.reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)

    def __call__(self, request: Request) -> list[Message]:
        got, want = self.native.process(request), self.reference.process(request)
        assert [encode(m) for m in got] == [encode(m) for m in want], request
        assert self.native.checksum() == self.reference.checksum()
        return got

    def run(self, requests: Sequence[Request]) -> list[Message]:
        return [m for r in requests for m in self(r)]

    def waiting(self, symbol: str = "AAA") -> list[int]:
        views = self.native.waiting_stops(symbol)
        assert views == self.reference.waiting_stops(symbol)
        return [v.order_id for v in views]


@pytest.fixture
def both() -> Both:
    return Both()


def trade_at(both: Both, price: int, request_id: int, quantity: int = 10) -> list[Message]:
    """A resting sell and a buy that lifts it: one trade at ``price`` between ACC1 and ACC3."""
    both(new_order(request_id, SELL, quantity, price, account="ACC1"))
    return both(new_order(request_id + 1, BUY, quantity, price, account="ACC3"))


def test_a_stop_waits_pending_trigger_out_of_the_book(both: Both) -> None:
    trade_at(both, 1000, 1)
    answer = both(stop(3, BUY, 10, 1010))
    assert len(answer) == 1
    assert isinstance(answer[0], Ack)
    assert (answer[0].status, answer[0].leaves_quantity, answer[0].price) == (
        OrderStatus.PENDING_TRIGGER,
        10,
        0,
    )
    assert both.native.top_of_book("AAA") == (0, 0, 0, 0)
    assert both.waiting() == [3]
    view = both.native.order_status(3)
    assert view is not None
    assert (view.status, view.stop_price) == (OrderStatus.PENDING_TRIGGER, 1010)


def test_a_buy_stop_fires_on_a_trade_at_or_above_its_stop_price(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, BUY, 10, 1010))
    both(new_order(4, SELL, 30, 1010, account="ACC1"))
    assert kinds(trade_at(both, 1005, 5)) == ["Ack", "Fill"]  # below the stop: nothing fires
    answer = both(new_order(7, BUY, 10, 1010, account="ACC3"))  # a trade at 1010
    assert kinds(answer) == ["Ack", "Fill", "Ack", "Fill"]
    fired = answer[2]
    assert isinstance(fired, Ack)
    assert (fired.order_id, fired.status) == (3, OrderStatus.NEW)
    fill = answer[3]
    assert isinstance(fill, Fill)
    assert (fill.buy_order_id, fill.aggressor_side, fill.price) == (3, BUY, 1010)
    assert all(isinstance(m, Ack | Fill) and (m.request_id, m.seq) == (7, both.native.seq) for m in answer)
    assert both.waiting() == []


def test_a_sell_stop_fires_on_a_trade_at_or_below_its_stop_price(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, SELL, 10, 990, 985))  # stop-limit: sell at 985 or better once 990 trades
    both(new_order(4, BUY, 10, 990, account="ACC1"))
    answer = both(new_order(5, SELL, 10, 990, account="ACC3"))
    assert kinds(answer) == ["Ack", "Fill", "Ack"]  # fired, nothing to sell to at 985 or above: rests
    assert both.native.top_of_book("AAA")[2:] == (985, 10)


def test_a_stop_met_on_arrival_fires_at_once_and_none_waits_before_the_first_trade(both: Both) -> None:
    assert kinds(both(stop(1, BUY, 10, 995))) == ["Ack"]  # no trade yet: it waits
    both(new_order(2, SELL, 50, 1000, account="ACC1"))
    trade_at(both, 1000, 3)  # the first trade, at 1000: the stop fires here, inside request 4
    assert both.waiting() == []
    answer = both(stop(5, BUY, 10, 1000))  # 1000 already traded: fires in its own answer
    assert kinds(answer) == ["Ack", "Ack", "Fill"]
    assert [m.order_id for m in answer if isinstance(m, Ack)] == [5, 5]
    assert [m.status for m in answer if isinstance(m, Ack)] == [OrderStatus.PENDING_TRIGGER, OrderStatus.NEW]


def test_stops_fire_by_stop_price_then_order_id_and_cascade(both: Both) -> None:
    trade_at(both, 1000, 1)
    for price in (1010, 1020, 1030):
        both(new_order(price, SELL, 10, price, account="ACC1"))  # ids 3, 4, 5
    both(stop(10, BUY, 10, 1020, account="ACC2"))  # id 6
    both(stop(11, BUY, 10, 1010, account="ACC2"))  # id 7
    both(stop(12, BUY, 10, 1010, account="ACC3"))  # id 8
    assert both.waiting() == [7, 8, 6]  # 1010 (by id), then 1020
    answer = both(new_order(13, BUY, 10, 1010, account="ACC3"))
    # The trade at 1010 triggers 7 and 8; 7 buys at 1020, which triggers 6, behind 8; 8 buys at
    # 1030; 6 finds no ask left and its remainder goes.
    assert [m.order_id for m in answer[1:] if isinstance(m, Ack)] == [7, 8, 6]
    assert [m.price for m in answer if isinstance(m, Fill)] == [1010, 1020, 1030]
    assert kinds(answer)[-2:] == ["Ack", "CancelAck"]
    assert isinstance(answer[-1], CancelAck)
    assert answer[-1].reason == CancelReason.NO_LIQUIDITY


def test_a_fired_stop_follows_fok_ioc_and_self_trade_prevention(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(new_order(3, SELL, 10, 1010, account="ACC2"))  # id 3
    both(stop(4, BUY, 20, 1005, 1010, tif=FOK, account="ACC2"))  # id 4
    both(stop(5, BUY, 20, 1005, 1010, tif=IOC, account="ACC3"))  # id 5
    both(new_order(6, SELL, 10, 1005, account="ACC1"))
    answer = both(new_order(7, BUY, 10, 1005, account="ACC3"))  # a trade at 1005 triggers 4 and 5
    reasons = [(m.order_id, m.reason) for m in answer if isinstance(m, CancelAck)]
    # 4 (FOK) can reach none of its 20: the only ask is its own account's and self-trade
    # prevention stops it there. 5 (IOC) buys those 10 at 1010 and its remainder goes.
    assert reasons == [(4, CancelReason.FOK_UNFILLED), (5, CancelReason.IOC_REMAINDER)]
    assert [(m.buy_order_id, m.price) for m in answer if isinstance(m, Fill)] == [(7, 1005), (5, 1010)]


def test_a_waiting_stop_can_be_cancelled_even_while_halted_but_not_replaced(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, SELL, 10, 990, 985))
    refused = both(Replace(4, "ACC2", "AAA", 3, 10, 990))
    assert isinstance(refused[0], Reject)
    assert refused[0].reason == RejectReason.REPLACE_NOT_ALLOWED
    assert refused[0].client_order_id == "S3"
    both(Admin(5, "AAA", AdminAction.HALT))
    answer = both(Cancel(6, "ACC2", "AAA", 3))
    assert isinstance(answer[0], CancelAck)
    assert (answer[0].reason, answer[0].cancelled_quantity) == (
        CancelReason.USER,
        10,
    )
    assert both.waiting() == []
    assert both.native.order_status(3) is None


def test_end_of_day_cancels_waiting_day_stops_with_the_resting_day_orders_by_id(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, BUY, 10, 1010, tif=DAY))
    both(new_order(4, BUY, 10, 990, account="ACC1", tif=DAY))
    both(stop(5, SELL, 10, 990, tif=GTC))
    answer = both(Admin(6, "", AdminAction.END_OF_DAY))
    assert [(m.order_id, m.reason) for m in answer if isinstance(m, CancelAck)] == [
        (3, CancelReason.END_OF_DAY),
        (4, CancelReason.END_OF_DAY),
    ]
    assert both.waiting() == [5]


def test_a_halt_triggers_nothing_and_stops_stay(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, BUY, 10, 1010))
    both(Admin(4, "AAA", AdminAction.HALT))
    refused = both(stop(5, BUY, 10, 1010))
    assert isinstance(refused[0], Reject)
    assert refused[0].reason == RejectReason.TRADING_HALTED
    both(Admin(6, "AAA", AdminAction.RESUME))
    assert both.waiting() == [3]


def test_a_duplicate_of_a_waiting_stop_answers_it_pending_trigger(both: Both) -> None:
    trade_at(both, 1000, 1)
    both(stop(3, BUY, 10, 1010, client_order_id="MINE"))
    answer = both(stop(4, BUY, 10, 1010, client_order_id="MINE"))
    assert both.native.last_flags == both.reference.last_flags == Flag.DUPLICATE
    assert isinstance(answer[0], Ack)
    assert (answer[0].order_id, answer[0].status) == (
        3,
        OrderStatus.PENDING_TRIGGER,
    )


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (stop(1, BUY, 10, 1010, flags=ORDER_FLAG_POST_ONLY), RejectReason.INVALID_ORDER),
        (stop(1, BUY, 10, 1010, symbol="ZZZ"), RejectReason.UNKNOWN_SYMBOL),
        (stop(1, BUY, 0, 1010), RejectReason.INVALID_QUANTITY),
        (stop(1, BUY, 15, 1010), RejectReason.LOT_SIZE),
        (stop(1, BUY, 10, 0), RejectReason.INVALID_PRICE),
        (stop(1, BUY, 10, 1011), RejectReason.TICK_SIZE),
        (stop(1, BUY, 10, 2000), RejectReason.PRICE_BAND),
        (stop(1, BUY, 10, 1010, 1001), RejectReason.TICK_SIZE),  # the limit price is checked first
        (stop(1, BUY, 10, 2000, 3000), RejectReason.PRICE_BAND),
        (NewStopOrder(1, "S", "ACC2", "AAA", BUY, 7, GTC, 0, 10, 0, 1010), RejectReason.INVALID_ORDER),
    ],
)
def test_invalid_stop_orders_are_rejected_without_an_order(
    both: Both, request_: NewStopOrder, reason: RejectReason
) -> None:
    answer = both(request_)
    assert len(answer) == 1
    assert isinstance(answer[0], Reject)
    assert answer[0].reason == reason
    assert both.native.order_count == 0


def test_stop_orders_journal_and_replay_through_the_frame_path() -> None:
    requests: list[Request] = [
        new_order(1, SELL, 10, 1000, account="ACC1"),
        new_order(2, BUY, 10, 1000, account="ACC3"),
        stop(3, BUY, 10, 1010),
        new_order(4, SELL, 10, 1010, account="ACC1"),
        new_order(5, BUY, 10, 1010, account="ACC3"),
    ]
    fed, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    _, held, _, changes, _, _, _ = fed.feed(b"".join(encode(r) for r in requests))
    assert changes == len(requests)
    assert [m for m, _ in decode_stream(held)[0]] == [m for r in requests for m in reference.process(r)]
    replayed = MatchingEngine(INSTRUMENTS)
    _, applied, defect, answers, _ = replayed.replay(fed.take_journal(), answers=True)
    assert (applied, defect) == (len(requests), None)
    assert [m for m, _ in decode_stream(answers)[0]] == [m for m, _ in decode_stream(held)[0]]
    assert replayed.checksum() == fed.checksum() == reference.checksum()


def kinds(messages: list[Message]) -> list[str]:
    return [type(m).__name__ for m in messages]
