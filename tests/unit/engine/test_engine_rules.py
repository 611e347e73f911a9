"""One test per matching rule, on small hand-written scenarios."""

from __future__ import annotations

import pytest

from meridian.domain import (
    CancelReason,
    Instrument,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from meridian.executions import execution_id, trade_id_base
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    ORDER_FLAG_STP_MASK,
    Ack,
    Admin,
    AdminAck,
    AdminAction,
    Cancel,
    CancelAck,
    Fill,
    Flag,
    Heartbeat,
    Message,
    NewOrder,
    Reject,
    Replace,
)
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from tests.unit.engine.engine_streams import INSTRUMENTS, flags, new_order

BUY, SELL = Side.BUY, Side.SELL
LIMIT, GTC, IOC = OrderType.LIMIT, TimeInForce.GTC, TimeInForce.IOC
NEWEST, OLDEST = SelfTradePrevention.CANCEL_NEWEST, SelfTradePrevention.CANCEL_OLDEST
BOTH, ALLOW = SelfTradePrevention.CANCEL_BOTH, SelfTradePrevention.ALLOW


@pytest.fixture
def engine() -> MatchingEngine:
    return MatchingEngine(INSTRUMENTS)


def kinds(messages: list[Message]) -> list[str]:
    return [type(m).__name__ for m in messages]


def fills(messages: list[Message]) -> list[Fill]:
    return [m for m in messages if isinstance(m, Fill)]


def rejected(messages: list[Message]) -> int:
    """The reason of the one Reject that ``messages`` must be."""
    assert len(messages) == 1
    assert isinstance(messages[0], Reject)
    return messages[0].reason


def test_ack_carries_engine_order_id_and_new_status(engine: MatchingEngine) -> None:
    first = engine.process(new_order(1, BUY, 10, 995))
    second = engine.process(new_order(2, SELL, 20, 1005))
    assert first == [Ack(1, 1, 1, "C1", "ACC1", "AAA", BUY, OrderStatus.NEW, 10, 10, 0, 995)]
    assert isinstance(second[0], Ack)
    assert second[0].order_id == 2
    assert engine.seq == 2


def test_seq_counts_every_input_including_rejects(engine: MatchingEngine) -> None:
    answers = [
        engine.process(new_order(7, BUY, 10, 995, symbol="NOPE")),
        engine.process(Cancel(8, "ACC1", "AAA", 99)),
        engine.process(new_order(9, BUY, 10, 995)),
    ]
    for expected_seq, (answer, request_id) in enumerate(zip(answers, (7, 8, 9), strict=True), 1):
        assert answer
        assert {(m[1], m[0]) for m in answer} == {(expected_seq, request_id)}  # (seq, request_id)
    assert engine.seq == 3


def test_better_price_then_earlier_order_trades_first(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1005, account="ACC2"))  # order 1
    engine.process(new_order(2, SELL, 10, 1000, account="ACC2"))  # order 2: better price
    engine.process(new_order(3, SELL, 10, 1000, account="ACC3"))  # order 3: same price, later
    out = engine.process(new_order(4, BUY, 30, 1005))
    assert [(f.sell_order_id, f.price, f.quantity) for f in fills(out)] == [
        (2, 1000, 10),
        (3, 1000, 10),
        (1, 1005, 10),
    ]
    assert [f.trade_id for f in fills(out)] == [1, 2, 3]
    assert kinds(out) == ["Ack", "Fill", "Fill", "Fill"]


@pytest.mark.parametrize("engine_type", [MatchingEngine, ReferenceEngine])
def test_the_first_trade_id_follows_the_trade_id_base(engine_type: type[MatchingEngine]) -> None:
    base = trade_id_base(7)
    engine = engine_type(INSTRUMENTS, trade_id_base=base)
    engine.process(new_order(1, BUY, 30, 1000, account="ACC2"))
    first = fills(engine.process(new_order(2, SELL, 10, 1000, account="ACC3")))
    second = fills(engine.process(new_order(3, SELL, 10, 1000, account="ACC3")))
    assert [f.trade_id for f in first + second] == [base + 1, base + 2]
    assert [execution_id(f.trade_id) for f in first + second] == ["7-1", "7-2"]


@pytest.mark.parametrize("base", [-1, 1 << 64])
def test_a_trade_id_base_outside_u64_is_refused(base: int) -> None:
    with pytest.raises(ValueError, match="trade id base"):
        MatchingEngine(INSTRUMENTS, trade_id_base=base)


def test_fill_reports_both_sides_at_the_resting_price(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 30, 1000, account="ACC2"))
    out = engine.process(new_order(2, SELL, 10, 990, account="ACC3"))
    assert fills(out) == [Fill(2, 2, 1, "AAA", 1000, 10, SELL, 1, 2, "ACC2", "ACC3", "C1", "C2", 20, 0)]
    assert engine.top_of_book("AAA") == (1000, 20, 0, 0)


def test_last_trade_price_recentres_the_price_band(engine: MatchingEngine) -> None:
    # BBB: reference 200, band 10% -> 180..220 until it trades.
    assert rejected(engine.process(new_order(1, BUY, 1, 230, symbol="BBB"))) == RejectReason.PRICE_BAND
    engine.process(new_order(2, SELL, 1, 215, symbol="BBB", account="ACC2"))
    engine.process(new_order(3, BUY, 1, 215, symbol="BBB"))
    # Last trade 215 -> band 194..236.
    assert isinstance(engine.process(new_order(4, BUY, 1, 230, symbol="BBB"))[0], Ack)
    assert rejected(engine.process(new_order(5, BUY, 1, 190, symbol="BBB"))) == RejectReason.PRICE_BAND


def test_market_order_sweeps_then_cancels_remainder_and_never_rests(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 10, 1010, account="ACC2"))
    out = engine.process(new_order(3, BUY, 30, 123, order_type=OrderType.MARKET))
    assert kinds(out) == ["Ack", "Fill", "Fill", "CancelAck"]
    assert isinstance(out[0], Ack)
    assert out[0].price == 0
    assert [f.price for f in fills(out)] == [1000, 1010]
    assert out[-1] == CancelAck(3, 3, 3, "C3", "ACC1", "AAA", CancelReason.NO_LIQUIDITY, 10)
    assert engine.top_of_book("AAA") == (0, 0, 0, 0)


def test_market_order_on_empty_book_is_cancelled_for_no_liquidity(engine: MatchingEngine) -> None:
    out = engine.process(new_order(1, SELL, 10, 0, order_type=OrderType.MARKET))
    assert kinds(out) == ["Ack", "CancelAck"]
    assert isinstance(out[1], CancelAck)
    assert out[1].reason == CancelReason.NO_LIQUIDITY
    assert out[1].cancelled_quantity == 10


def test_ioc_remainder_is_cancelled(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    out = engine.process(new_order(2, BUY, 30, 1000, tif=TimeInForce.IOC))
    assert kinds(out) == ["Ack", "Fill", "CancelAck"]
    assert isinstance(out[2], CancelAck)
    assert (out[2].reason, out[2].cancelled_quantity) == (CancelReason.IOC_REMAINDER, 20)
    assert engine.top_of_book("AAA") == (0, 0, 0, 0)


def test_fok_that_cannot_fill_entirely_does_nothing(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 10, 1010, account="ACC2"))
    book_before = engine.book_checksums()
    out = engine.process(new_order(3, BUY, 30, 1010, tif=TimeInForce.FOK))
    assert kinds(out) == ["Ack", "CancelAck"]
    assert isinstance(out[1], CancelAck)
    assert (out[1].reason, out[1].cancelled_quantity) == (CancelReason.FOK_UNFILLED, 30)
    assert engine.top_of_book("AAA") == (0, 0, 1000, 10)
    assert engine.book_checksums() == book_before


def test_fok_that_can_fill_trades_completely(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 20, 1010, account="ACC2"))
    out = engine.process(new_order(3, BUY, 30, 1010, tif=TimeInForce.FOK))
    assert kinds(out) == ["Ack", "Fill", "Fill"]
    assert [f.buy_leaves_quantity for f in fills(out)] == [20, 0]
    assert engine.order_status(3) is None  # filled: finished orders leave the engine
    assert engine.live_order_count == 0


def test_end_of_day_cancels_day_orders_only(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 10, 995, tif=TimeInForce.DAY))
    engine.process(new_order(2, BUY, 10, 990, tif=TimeInForce.GTC))
    engine.process(new_order(3, SELL, 5, 200, symbol="BBB", tif=TimeInForce.DAY))
    out = engine.process(Admin(4, "", AdminAction.END_OF_DAY))
    assert out == [
        CancelAck(4, 4, 1, "C1", "ACC1", "AAA", CancelReason.END_OF_DAY, 10),
        CancelAck(4, 4, 3, "C3", "ACC1", "BBB", CancelReason.END_OF_DAY, 5),
        AdminAck(4, 4, "", AdminAction.END_OF_DAY),
    ]
    assert engine.top_of_book("AAA") == (990, 10, 0, 0)


def test_post_only_rests_or_is_rejected_when_it_would_cross(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    crossing = engine.process(new_order(2, BUY, 10, 1000, order_flags=flags(post_only=True)))
    assert rejected(crossing) == RejectReason.POST_ONLY_WOULD_CROSS
    resting = engine.process(new_order(3, BUY, 10, 995, order_flags=flags(post_only=True)))
    assert kinds(resting) == ["Ack"]
    market = engine.process(new_order(4, BUY, 10, 0, order_type=OrderType.MARKET, order_flags=flags(True)))
    assert rejected(market) == RejectReason.INVALID_ORDER
    assert engine.top_of_book("AAA") == (995, 10, 1000, 10)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (new_order(1, BUY, 10, 1000, symbol="ZZZ"), RejectReason.UNKNOWN_SYMBOL),
        (new_order(1, BUY, 0, 1000), RejectReason.INVALID_QUANTITY),
        (new_order(1, BUY, -10, 1000), RejectReason.INVALID_QUANTITY),
        (new_order(1, BUY, 501, 200, symbol="BBB"), RejectReason.INVALID_QUANTITY),
        (new_order(1, BUY, 15, 1000), RejectReason.LOT_SIZE),
        (new_order(1, BUY, 10, 1002), RejectReason.TICK_SIZE),
        (new_order(1, BUY, 10, 0), RejectReason.INVALID_PRICE),
        (new_order(1, BUY, 10, -5), RejectReason.INVALID_PRICE),
        (new_order(1, BUY, 10, 1055), RejectReason.PRICE_BAND),
        (new_order(1, BUY, 10, 945), RejectReason.PRICE_BAND),
        (
            NewOrder(1, "C1", "ACC1", "AAA", 3, OrderType.LIMIT, TimeInForce.GTC, 0, 10, 1000),
            RejectReason.INVALID_ORDER,
        ),
        (NewOrder(1, "C1", "ACC1", "AAA", BUY, 9, TimeInForce.GTC, 0, 10, 1000), RejectReason.INVALID_ORDER),
        (NewOrder(1, "C1", "ACC1", "AAA", BUY, OrderType.LIMIT, 0, 0, 10, 1000), RejectReason.INVALID_ORDER),
        (new_order(1, BUY, 10, 1000, order_flags=0x80), RejectReason.INVALID_ORDER),
        (
            new_order(1, BUY, 10, 1000, tif=TimeInForce.IOC, order_flags=flags(True)),
            RejectReason.INVALID_ORDER,
        ),
    ],
)
def test_invalid_new_orders_are_rejected_without_an_order(
    engine: MatchingEngine, request_: NewOrder, reason: RejectReason
) -> None:
    out = engine.process(request_)
    assert out == [Reject(1, 1, 0, "C1", request_.symbol, reason)]
    assert engine.order_status(1) is None
    assert engine.find_client_order("ACC1", "C1") is None


def test_market_order_price_is_not_validated(engine: MatchingEngine) -> None:
    out = engine.process(new_order(1, BUY, 10, -7, order_type=OrderType.MARKET))
    assert kinds(out) == ["Ack", "CancelAck"]


def test_duplicate_client_order_id_answers_the_existing_order(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 30, 1000, client_order_id="X"))
    engine.process(new_order(2, SELL, 10, 1000, account="ACC2"))
    assert engine.last_flags == 0
    out = engine.process(new_order(3, BUY, 50, 995, client_order_id="X"))
    assert out == [Ack(3, 3, 1, "X", "ACC1", "AAA", BUY, OrderStatus.PARTIALLY_FILLED, 30, 20, 10, 1000)]
    assert engine.last_was_duplicate
    assert engine.last_flags == Flag.DUPLICATE
    assert engine.find_client_order("ACC1", "X") == 1
    assert engine.order_status(3) is None  # no order was created
    other_account = engine.process(new_order(4, BUY, 10, 995, client_order_id="X", account="ACC3"))
    assert isinstance(other_account[0], Ack)
    assert other_account[0].order_id == 3
    assert engine.last_flags == 0


def test_duplicate_of_a_finished_order_reports_its_final_state(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 10, 1000, client_order_id="X"))
    engine.process(Cancel(2, "ACC1", "AAA", 1))
    out = engine.process(new_order(3, BUY, 10, 1000, client_order_id="X"))
    assert isinstance(out[0], Ack)
    assert (out[0].status, out[0].leaves_quantity) == (OrderStatus.CANCELLED, 0)


def test_cancel_acknowledges_the_leaves(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 30, 1000))
    engine.process(new_order(2, SELL, 10, 1000, account="ACC2"))
    out = engine.process(Cancel(3, "ACC1", "AAA", 1))
    assert out == [CancelAck(3, 3, 1, "C1", "ACC1", "AAA", CancelReason.USER, 20)]
    assert engine.order_status(1) is None
    duplicate = engine.process(new_order(4, BUY, 30, 1000, client_order_id="C1"))
    assert duplicate == [Ack(4, 4, 1, "C1", "ACC1", "AAA", BUY, OrderStatus.CANCELLED, 30, 0, 10, 1000)]
    assert engine.top_of_book("AAA") == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("cancel", "reason", "coid"),
    [
        (Cancel(2, "ACC1", "AAA", 42), RejectReason.UNKNOWN_ORDER, ""),
        (Cancel(2, "ACC1", "AAA", 0), RejectReason.UNKNOWN_ORDER, ""),
        (Cancel(2, "ACC1", "BBB", 1), RejectReason.UNKNOWN_ORDER, ""),
        (Cancel(2, "ACC2", "AAA", 1), RejectReason.NOT_ORDER_OWNER, ""),
    ],
)
def test_cancel_rejects(engine: MatchingEngine, cancel: Cancel, reason: RejectReason, coid: str) -> None:
    engine.process(new_order(1, BUY, 10, 1000))
    assert engine.process(cancel) == [Reject(2, 2, cancel.order_id, coid, cancel.symbol, reason)]
    assert engine.top_of_book("AAA") == (1000, 10, 0, 0)


def test_cancel_of_a_finished_order_is_unknown(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 10, 1000))
    engine.process(Cancel(2, "ACC1", "", 1))
    assert engine.process(Cancel(3, "ACC1", "", 1)) == [Reject(3, 3, 1, "", "", RejectReason.UNKNOWN_ORDER)]
    # The engine no longer knows whose it was: another account hears the same.
    assert engine.process(Cancel(4, "ACC2", "", 1)) == [Reject(4, 4, 1, "", "", RejectReason.UNKNOWN_ORDER)]


def test_cancels_are_accepted_while_halted(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 10, 1000))
    engine.process(Admin(2, "", AdminAction.HALT))
    assert kinds(engine.process(Cancel(3, "ACC1", "AAA", 1))) == ["CancelAck"]


def test_replace_down_at_same_price_keeps_time_priority(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 30, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 30, 1000, account="ACC3"))
    out = engine.process(Replace(3, "ACC2", "AAA", 1, 20, 1000))
    assert out == [Ack(3, 3, 1, "C1", "ACC2", "AAA", SELL, OrderStatus.NEW, 20, 20, 0, 1000)]
    assert engine.last_was_replace
    assert engine.last_flags == Flag.REPLACED
    trade = fills(engine.process(new_order(4, BUY, 10, 1000)))
    assert [f.sell_order_id for f in trade] == [1]


def test_replace_to_the_same_quantity_and_price_keeps_time_priority(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 30, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 30, 1000, account="ACC3"))
    assert kinds(engine.process(Replace(3, "ACC2", "AAA", 1, 30, 1000))) == ["Ack"]
    trade = fills(engine.process(new_order(4, BUY, 10, 1000)))
    assert [f.sell_order_id for f in trade] == [1]


def test_exact_fill_completes_both_orders_and_empties_the_level(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 20, 1000, account="ACC2"))
    out = engine.process(new_order(2, BUY, 20, 1000))
    assert [(f.buy_leaves_quantity, f.sell_leaves_quantity) for f in fills(out)] == [(0, 0)]
    assert engine.top_of_book("AAA") == (0, 0, 0, 0)
    assert (engine.order_status(1), engine.order_status(2), engine.live_order_count) == (None, None, 0)
    for request_id, coid, account in ((3, "C1", "ACC2"), (4, "C2", "ACC1")):
        (ack,) = engine.process(new_order(request_id, BUY, 20, 1000, client_order_id=coid, account=account))
        assert isinstance(ack, Ack)
        assert (ack.status, ack.leaves_quantity, ack.filled_quantity) == (OrderStatus.FILLED, 0, 20)


@pytest.mark.parametrize(("quantity", "price"), [(40, 1000), (30, 1005)])
def test_replace_up_or_to_a_new_price_loses_time_priority(
    engine: MatchingEngine, quantity: int, price: int
) -> None:
    engine.process(new_order(1, SELL, 30, 1000, account="ACC2"))
    engine.process(new_order(2, SELL, 30, price, account="ACC3"))
    engine.process(Replace(3, "ACC2", "AAA", 1, quantity, price))
    trade = fills(engine.process(new_order(4, BUY, 10, 1005)))
    assert [f.sell_order_id for f in trade] == [2]


def test_replace_that_crosses_trades_at_once_and_counts_filled_into_quantity(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 20, 995, account="ACC2"))
    engine.process(new_order(2, SELL, 30, 1000))
    engine.process(new_order(3, BUY, 10, 1000, account="ACC3"))  # order 2 now 10 filled, 20 leaves
    out = engine.process(Replace(4, "ACC1", "AAA", 2, 30, 995))
    assert out[0] == Ack(4, 4, 2, "C2", "ACC1", "AAA", SELL, OrderStatus.PARTIALLY_FILLED, 40, 30, 10, 995)
    assert [(f.buy_order_id, f.quantity, f.aggressor_side) for f in fills(out)] == [(1, 20, SELL)]
    assert engine.top_of_book("AAA") == (0, 0, 995, 10)
    view = engine.order_status(2)
    assert view is not None
    assert view.quantity == view.filled_quantity + view.leaves_quantity + view.cancelled_quantity == 40


@pytest.mark.parametrize(
    ("replace", "reason"),
    [
        (Replace(2, "ACC1", "AAA", 1, 0, 1000), RejectReason.INVALID_QUANTITY),
        (Replace(2, "ACC1", "AAA", 1, -10, 1000), RejectReason.INVALID_QUANTITY),
        (Replace(2, "ACC1", "AAA", 1, 15, 1000), RejectReason.LOT_SIZE),
        (Replace(2, "ACC1", "AAA", 1, 10, 1001), RejectReason.TICK_SIZE),
        (Replace(2, "ACC1", "AAA", 1, 10, 0), RejectReason.INVALID_PRICE),
        (Replace(2, "ACC1", "AAA", 1, 10, 1100), RejectReason.PRICE_BAND),
        (Replace(2, "ACC2", "AAA", 1, 10, 1000), RejectReason.NOT_ORDER_OWNER),
        (Replace(2, "ACC1", "AAA", 9, 10, 1000), RejectReason.UNKNOWN_ORDER),
    ],
)
def test_replace_rejects_leave_the_order_alone(
    engine: MatchingEngine, replace: Replace, reason: RejectReason
) -> None:
    engine.process(new_order(1, BUY, 20, 1000))
    out = engine.process(replace)
    assert rejected(out) == reason
    assert not engine.last_was_replace
    assert engine.top_of_book("AAA") == (1000, 20, 0, 0)


def test_replace_of_a_finished_order_is_not_allowed(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 20, 1000))
    engine.process(Cancel(2, "ACC1", "AAA", 1))
    out = engine.process(Replace(3, "ACC1", "AAA", 1, 10, 1000))
    assert out == [Reject(3, 3, 1, "", "AAA", RejectReason.REPLACE_NOT_ALLOWED)]
    never = engine.process(Replace(4, "ACC1", "AAA", 2, 10, 1000))
    assert never == [Reject(4, 4, 2, "", "AAA", RejectReason.UNKNOWN_ORDER)]


def test_post_only_order_cannot_be_replaced_across_the_book(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC2"))
    engine.process(new_order(2, BUY, 10, 995, order_flags=flags(post_only=True)))
    out = engine.process(Replace(3, "ACC1", "AAA", 2, 10, 1000))
    assert rejected(out) == RejectReason.POST_ONLY_WOULD_CROSS


def _self_trade_setup(engine: MatchingEngine) -> None:
    engine.process(new_order(1, SELL, 10, 1000, account="ACC1"))  # own order, best
    engine.process(new_order(2, SELL, 10, 1000, account="ACC2"))


def test_stp_cancel_newest_cancels_the_incoming_remainder(engine: MatchingEngine) -> None:
    _self_trade_setup(engine)
    out = engine.process(new_order(3, BUY, 20, 1000, order_flags=flags(stp=NEWEST)))
    assert out[1:] == [CancelAck(3, 3, 3, "C3", "ACC1", "AAA", CancelReason.SELF_TRADE, 20)]
    assert engine.top_of_book("AAA") == (0, 0, 1000, 20)


def test_stp_cancel_oldest_cancels_the_resting_order_and_keeps_matching(engine: MatchingEngine) -> None:
    _self_trade_setup(engine)
    out = engine.process(new_order(3, BUY, 20, 1000, order_flags=flags(stp=OLDEST)))
    assert kinds(out) == ["Ack", "CancelAck", "Fill"]
    assert out[1] == CancelAck(3, 3, 1, "C1", "ACC1", "AAA", CancelReason.SELF_TRADE, 10)
    assert fills(out)[0].sell_order_id == 2
    assert engine.top_of_book("AAA") == (1000, 10, 0, 0)


def test_stp_cancel_both_cancels_both_orders(engine: MatchingEngine) -> None:
    _self_trade_setup(engine)
    out = engine.process(new_order(3, BUY, 20, 1000, order_flags=flags(stp=BOTH)))
    assert [(m.order_id, m.reason) for m in out[1:] if isinstance(m, CancelAck)] == [
        (1, CancelReason.SELF_TRADE),
        (3, CancelReason.SELF_TRADE),
    ]
    assert kinds(out) == ["Ack", "CancelAck", "CancelAck"]
    assert engine.top_of_book("AAA") == (0, 0, 1000, 10)


def test_stp_allow_trades_with_itself(engine: MatchingEngine) -> None:
    _self_trade_setup(engine)
    out = engine.process(new_order(3, BUY, 20, 1000, order_flags=flags(stp=ALLOW)))
    assert [(f.buy_account, f.sell_account) for f in fills(out)] == [("ACC1", "ACC1"), ("ACC1", "ACC2")]


def test_fok_counts_only_what_self_trade_prevention_lets_it_reach(engine: MatchingEngine) -> None:
    _self_trade_setup(engine)
    newest = flags(stp=NEWEST)
    out = engine.process(new_order(3, BUY, 10, 1000, tif=TimeInForce.FOK, order_flags=newest))
    assert kinds(out) == ["Ack", "CancelAck"]
    assert isinstance(out[1], CancelAck)
    assert out[1].reason == CancelReason.FOK_UNFILLED
    oldest = flags(stp=OLDEST)
    out = engine.process(new_order(4, BUY, 10, 1000, tif=TimeInForce.FOK, order_flags=oldest))
    assert kinds(out) == ["Ack", "CancelAck", "Fill"]


def test_halt_and_resume_one_symbol_or_all(engine: MatchingEngine) -> None:
    assert engine.process(Admin(1, "AAA", AdminAction.HALT)) == [AdminAck(1, 1, "AAA", AdminAction.HALT)]
    assert rejected(engine.process(new_order(2, BUY, 10, 1000))) == RejectReason.TRADING_HALTED
    assert kinds(engine.process(new_order(3, BUY, 1, 200, symbol="BBB"))) == ["Ack"]
    engine.process(Admin(4, "", AdminAction.HALT))
    assert rejected(engine.process(new_order(5, BUY, 1, 200, symbol="BBB"))) == RejectReason.TRADING_HALTED
    engine.process(Admin(6, "BBB", AdminAction.RESUME))  # the global halt still holds
    assert rejected(engine.process(new_order(7, BUY, 1, 200, symbol="BBB"))) == RejectReason.TRADING_HALTED
    engine.process(Admin(8, "", AdminAction.RESUME))  # lifts every halt
    assert kinds(engine.process(new_order(9, BUY, 10, 1000))) == ["Ack"]
    assert kinds(engine.process(Replace(10, "ACC1", "", 1, 2, 200))) == ["Ack"]


def test_end_of_day_forgets_the_finished_orders_client_order_ids(engine: MatchingEngine) -> None:
    engine.process(new_order(1, BUY, 10, 995, client_order_id="LIVE"))
    engine.process(new_order(2, BUY, 10, 990, client_order_id="GONE"))
    engine.process(Cancel(3, "ACC1", "AAA", 2))
    engine.process(Admin(4, "AAA", AdminAction.END_OF_DAY))  # one symbol: the day goes on
    assert engine.find_client_order("ACC1", "GONE") == 2
    engine.process(Admin(5, "", AdminAction.END_OF_DAY))
    assert engine.find_client_order("ACC1", "GONE") is None
    assert engine.find_client_order("ACC1", "LIVE") == 1
    assert engine.client_order_ids == 1
    again = engine.process(new_order(6, BUY, 10, 990, client_order_id="GONE"))
    assert isinstance(again[0], Ack)
    assert (again[0].order_id, engine.last_flags) == (3, 0)
    (duplicate,) = engine.process(new_order(7, BUY, 10, 990, client_order_id="LIVE"))
    assert isinstance(duplicate, Ack)
    assert duplicate.order_id == 1
    assert engine.last_was_duplicate


def test_admin_rejects_unknown_symbol_and_action(engine: MatchingEngine) -> None:
    assert engine.process(Admin(1, "ZZZ", AdminAction.HALT)) == [
        Reject(1, 1, 0, "", "ZZZ", RejectReason.UNKNOWN_SYMBOL)
    ]
    assert engine.process(Admin(2, "AAA", 99)) == [Reject(2, 2, 0, "", "AAA", RejectReason.INVALID_ORDER)]


def test_request_that_is_not_state_changing_is_answered_not_raised(engine: MatchingEngine) -> None:
    out = engine.process(Heartbeat(5, 123))
    assert out == [Reject(5, 1, 0, "", "", RejectReason.INVALID_ORDER)]


def test_depth_and_top_of_book_sum_levels(engine: MatchingEngine) -> None:
    for request_id, (side, quantity, price) in enumerate(
        [(BUY, 10, 995), (BUY, 20, 995), (BUY, 10, 990), (SELL, 30, 1005), (SELL, 10, 1010)], 1
    ):
        engine.process(new_order(request_id, side, quantity, price))
    assert engine.top_of_book("AAA") == (995, 30, 1005, 30)
    assert engine.depth("AAA", 5) == ([(995, 30), (990, 10)], [(1005, 30), (1010, 10)])
    assert engine.depth("AAA", 1) == ([(995, 30)], [(1005, 30)])
    assert engine.top_of_book("BBB") == (0, 0, 0, 0)


@pytest.mark.parametrize("band_bps", [0, 1, 500, 1000, 2000, 9999, 10_000, 25_000])
@pytest.mark.parametrize("reference_price", [0, 1, 7, 200, 1000, 19_000, 10**12])
def test_the_price_band_is_the_instruments_band(band_bps: int, reference_price: int) -> None:
    """The engine's integer band (around the reference price, then around each last trade price)
    accepts exactly ``Instrument.band``'s prices."""
    instrument = Instrument("CCC", reference_price=reference_price, band_bps=band_bps)
    engine = MatchingEngine([instrument])
    request_id = 0

    def answer(side: Side, price: int, account: str = "ACC1", quantity: int = 1) -> list[Message]:
        nonlocal request_id
        request_id += 1
        return engine.process(new_order(request_id, side, quantity, price, symbol="CCC", account=account))

    reference = reference_price
    for last_price in (0, 1, 3, 199, 201, 1005, 10**9 + 7):
        if last_price:  # trade at last_price (within the current band) to move the band
            low, high = instrument.band(reference)
            if not low <= last_price <= high:
                continue
            answer(SELL, last_price, account="ACC2")
            assert kinds(answer(BUY, last_price)) == ["Ack", "Fill"]
            reference = last_price
        low, high = instrument.band(reference)
        for price, accepted in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            if price <= 0 or price > 10**15:
                continue
            out = answer(BUY, price, account="ACC3")
            if accepted:
                assert kinds(out) in (["Ack"], ["Ack", "Fill"]), (price, out)
                assert isinstance(out[0], Ack)
                engine.process(Cancel(request_id + 1000, "ACC3", "CCC", out[0].order_id))
            else:
                assert rejected(out) == RejectReason.PRICE_BAND, (price, out)


def _edge_new_orders() -> list[NewOrder]:
    """New orders on and just past every validation boundary of AAA (tick 5, lot 10, band 950..1050)."""
    post_only, stp_bits, market = int(ORDER_FLAG_POST_ONLY), int(ORDER_FLAG_STP_MASK), int(OrderType.MARKET)
    max_quantity = INSTRUMENTS[0].max_order_quantity
    base = {"side": int(BUY), "order_type": int(LIMIT), "tif": int(GTC), "flags": 0}
    base |= {"quantity": 10, "price": 1000}
    variants: list[dict[str, int]] = [
        {"price": 950}, {"price": 945}, {"price": 1050}, {"price": 1055}, {"price": 0}, {"price": -5},
        {"price": 1001}, {"quantity": 0}, {"quantity": -10}, {"quantity": 15},
        {"quantity": max_quantity}, {"quantity": max_quantity + 10},
        {"side": 0}, {"side": 3}, {"order_type": 0}, {"order_type": 3}, {"tif": 0}, {"tif": 5},
        {"flags": 8}, {"flags": -1}, {"flags": post_only}, {"flags": stp_bits},
        {"flags": post_only, "tif": int(IOC)}, {"order_type": market, "price": 0},
        {"side": int(SELL), "price": 950}, {"side": int(SELL), "price": 1055},
    ]  # fmt: skip
    orders = []
    for request_id, variant in enumerate(variants, 1):
        f = base | variant
        coid = f"E{request_id}"
        order = (f["side"], f["order_type"], f["tif"], f["flags"], f["quantity"], f["price"])
        orders.append(NewOrder(request_id, coid, "ACC1", "AAA", *order))
    return orders


def test_validation_boundaries_answer_as_the_reference_model() -> None:
    engine, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    for request in _edge_new_orders():
        assert engine.process(request) == reference.process(request), request
    assert engine.checksum() == reference.checksum()
    for action in (AdminAction.HALT, AdminAction.RESUME):  # and again with AAA halted, then resumed
        engine.process(Admin(900 + action, "AAA", action))
        reference.process(Admin(900 + action, "AAA", action))
        for request in _edge_new_orders():
            request = request._replace(client_order_id=f"{request.client_order_id}-{action}")
            assert engine.process(request) == reference.process(request), request
        assert engine.checksum() == reference.checksum()
