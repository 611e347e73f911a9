"""Duplicate detection across the native core's two client-order-id indexes.

Ids numbered as FIX sessions number them (a prefix of at most 12 characters, then a rising decimal
counter without leading zeros) are indexed per (prefix, account) stream; every other id, and a
stream id that comes out of order, goes to the hash table. Whichever index holds an id, the rule
is the reference model's: a (client order id, account) seen today is answered as a duplicate of
its order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.domain import Side
from meridian.protocol import Admin, AdminAction, Message, encode
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from tests.unit.engine.engine_streams import INSTRUMENTS, Request, new_order

BUY, SELL = Side.BUY, Side.SELL

# Ids that sit at the edges of the canonical decimal suffix: leading zeros, the longest counters,
# digits only, digits inside the prefix, a prefix that is itself a number's start.
TRICKY = (
    "C1", "C2", "C10", "C9", "C2", "C010", "C0", "C00", "C", "1", "2", "10", "01", "0",
    "A1B2", "A1B3", "A1B1", "A1B2", "A1", "A12", "A1B", "X-99", "X-100", "X-98", "X-0100",
    "N999999999999999999", "N1000000000000000000", "N999999999999999999", "N99999999999999999",
    "N12345678901234567890"[:20], "12345678901234567890", "1234567890123456789",
    "C1", "C10", "C9", "1", "01",
    "ABCDEFGHIJKL1", "ABCDEFGHIJKL3", "ABCDEFGHIJKL2", "ABCDEFGHIJKLM1", "ABCDEFGHIJKLM2", "ABCDEFGHIJKLM1",
    "ABCDEFGHIJKL3", "0f3a9c27be41d5e6a807", "0f3a9c27be41d5e6a80a", "0f3a9c27be41d5e6a807",
)  # fmt: skip


class Both:
    def __init__(self) -> None:
        self.native, self.reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
        self.request_id = 0

    def __call__(self, request: Request) -> list[Message]:
        got, want = self.native.process(request), self.reference.process(request)
        assert [encode(m) for m in got] == [encode(m) for m in want], request
        assert self.native.checksum() == self.reference.checksum()
        return got

    def order(self, coid: str, account: str = "ACC1", side: Side = BUY, price: int = 990) -> list[Message]:
        self.request_id += 1
        return self(new_order(self.request_id, side, 10, price, account=account, client_order_id=coid))


def test_tricky_ids_are_duplicates_exactly_when_seen_today() -> None:
    both = Both()
    seen: dict[tuple[str, str], int] = {}
    for coid in TRICKY:
        for account in ("ACC1", "ACC2"):
            both.order(coid, account)
            assert both.native.last_was_duplicate == ((account, coid) in seen), (account, coid)
            seen.setdefault((account, coid), both.native.order_count)
    for (account, coid), order_id in seen.items():
        assert both.native.find_client_order(account, coid) == order_id
    assert both.native.find_client_order("ACC1", "C11") is None
    assert both.native.find_client_order("ACC3", "C1") is None
    assert both.native.client_order_ids == len(seen)


def test_end_of_day_and_a_snapshot_keep_both_indexes() -> None:
    both = Both()
    for coid in ("C1", "C3", "C2", "X7", "Y", "C5"):
        both.order(coid)
    both.order("C6", side=SELL, price=1010)  # live across the day's end, as is everything above
    both.order("C7", "ACC2", side=BUY, price=1010)  # fills C6: C6 and C7 are finished
    both(Admin(100, "", AdminAction.END_OF_DAY))
    assert both.native.find_client_order("ACC2", "C7") is None
    assert both.native.find_client_order("ACC1", "C6") is None
    for coid in ("C2", "C5", "X7", "Y"):  # still live: still duplicates
        assert isinstance(both.native.find_client_order("ACC1", coid), int)
    restored = MatchingEngine.restore(both.native.snapshot())
    both.native = restored
    for coid in ("C7", "C6", "C2", "C4", "C8", "X7", "X8", "Y"):
        both.order(coid)
        assert both.native.last_was_duplicate == (coid in ("C2", "X7", "Y")), coid


def test_ids_past_the_stream_limit_are_still_deduplicated() -> None:
    engine = MatchingEngine(INSTRUMENTS)
    coids = [f"S{i}-1" for i in range(17_000)]  # one stream each: more than the engine keeps
    for request_id, coid in enumerate(coids, 1):
        engine.submit(request_id, coid, "ACC1", "AAA", 1, 1, 1, 0, 10, 990)
        assert not engine.last_was_duplicate
    for request_id, coid in enumerate([*coids[::997], "S16999-2", "S16999-1"], 20_000):
        engine.submit(request_id, coid, "ACC1", "AAA", 1, 1, 1, 0, 10, 990)
        assert engine.last_was_duplicate == coid.endswith("-1"), coid
    assert engine.client_order_ids == len(coids) + 1


COIDS = st.one_of(
    st.builds(lambda p, n: f"{p}{n}", st.sampled_from(["C", "C0", "", "Q-", "7"]), st.integers(0, 40)),
    st.sampled_from(["C", "Q-", "ZZ", "C07", "000", "C1C"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(COIDS, st.sampled_from(["ACC1", "ACC2"]), st.booleans()), max_size=80))
def test_native_and_reference_agree_on_drawn_ids(orders: list[tuple[str, str, bool]]) -> None:
    both = Both()
    for coid, account, end_of_day in orders:
        both.order(coid, account, side=BUY if len(coid) % 2 else SELL, price=1000)
        if end_of_day and len(coid) % 7 == 0:
            both(Admin(both.request_id + 1_000_000, "", AdminAction.END_OF_DAY))
