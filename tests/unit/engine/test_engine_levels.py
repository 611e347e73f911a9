"""Price levels found through the native core's price -> level cache, against the reference model.

The cache has a slot per price modulo its size on each book side and is only a hint: prices a
multiple of its size apart share a slot, and levels come and go under it (filled away, cancelled
away, repriced away). These streams rest, cross, cancel and replace orders on such prices.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.domain import Instrument, OrderType, Side, TimeInForce
from meridian.protocol import Cancel, Fill, Message, NewStopOrder, Replace, encode
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from tests.unit.engine.engine_streams import Request, new_order

WIDE = (Instrument("WIDE", tick_size=1, lot_size=1, reference_price=0, band_bps=0),)
# Pairs of prices that share a cache slot (the cache has 512 slots per side), near each other.
PRICES = (1000, 1512, 2024, 1001, 1513, 999, 1511, 488)


class Both:
    def __init__(self) -> None:
        self.native, self.reference = MatchingEngine(WIDE), ReferenceEngine(WIDE)

    def __call__(self, request: Request) -> list[Message]:
        got, want = self.native.process(request), self.reference.process(request)
        assert [encode(m) for m in got] == [encode(m) for m in want], request
        assert self.native.checksum() == self.reference.checksum()
        return got


OPS = st.lists(
    st.tuples(
        st.sampled_from(["new", "new", "new", "cancel", "replace"]),
        st.sampled_from(Side),
        st.sampled_from(PRICES),
        st.integers(1, 30),
        st.integers(1, 40),
    ),
    max_size=120,
)


@settings(max_examples=80, deadline=None)
@given(OPS)
def test_levels_sharing_a_cache_slot_match_the_reference(ops: list[tuple[str, Side, int, int, int]]) -> None:
    both = Both()
    for request_id, (kind, side, price, quantity, target) in enumerate(ops, 1):
        account = "ACC1" if request_id % 2 else "ACC2"
        if kind == "new":
            both(new_order(request_id, side, quantity, price, symbol="WIDE", account=account))
        elif kind == "cancel":
            both(Cancel(request_id, account, "WIDE", target))
        else:
            both(Replace(request_id, account, "WIDE", target, quantity, price))


def test_a_level_emptied_under_a_shared_slot_is_made_again() -> None:
    both = Both()
    both(new_order(1, Side.BUY, 10, 1000, symbol="WIDE"))
    both(new_order(2, Side.BUY, 10, 1512, symbol="WIDE"))  # takes the slot of 1000
    both(new_order(3, Side.BUY, 10, 1000, symbol="WIDE"))  # found by search, takes it back
    both(Cancel(4, "ACC1", "WIDE", 2))  # 1512 goes: the slot holds 1000's level, untouched
    both(new_order(5, Side.SELL, 20, 1000, symbol="WIDE", account="ACC2"))  # fills 1 and 3: 1000 goes
    both(new_order(6, Side.BUY, 10, 1000, symbol="WIDE"))  # a new level for the same price
    both(new_order(7, Side.SELL, 10, 1000, symbol="WIDE", account="ACC2"))  # fills it: 1000 goes again
    both(new_order(8, Side.BUY, 10, 1512, symbol="WIDE"))  # a new level in the emptied slot
    both(new_order(9, Side.BUY, 10, 1000, symbol="WIDE"))
    both(Cancel(10, "ACC1", "WIDE", 8))  # cancelled away
    both(new_order(11, Side.BUY, 10, 1512, symbol="WIDE"))
    assert both.native.depth("WIDE", 5) == both.reference.depth("WIDE", 5)


def test_books_and_stop_queues_grow_past_their_first_capacity_as_the_reference_does() -> None:
    """More price levels (64 at first), waiting stops (16) and stops firing at once (64) than the
    native arrays first hold: each doubles and the answers stay the reference's."""
    both, request_id = Both(), 0
    for offset in range(100):  # a hundred ask levels
        request_id += 1
        both(new_order(request_id, Side.SELL, 1, 1001 + offset, symbol="WIDE", account="ACC1"))
    for offset in range(100):  # a hundred buy stops below the asks: the first trade fires them all
        request_id += 1
        kind, tif = OrderType.MARKET, TimeInForce.GTC
        both(
            NewStopOrder(
                request_id, f"S{request_id}", "ACC2", "WIDE", Side.BUY, kind, tif, 0, 1, 0, 901 + offset
            )
        )
    assert len(both.native.waiting_stops("WIDE")) == 100
    request_id += 1
    answer = both(new_order(request_id, Side.BUY, 1, 1100, symbol="WIDE", account="ACC3"))  # lifts 1001
    assert len([m for m in answer if isinstance(m, Fill)]) == 100  # the trade, then 99 of the stops
    assert both.native.waiting_stops("WIDE") == []
