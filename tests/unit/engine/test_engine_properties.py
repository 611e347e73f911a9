"""Properties of the matching engine over random request streams, checked against the reference model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meridian.domain import Side
from meridian.executions import MAX_NODE_NUMBER, trade_id_base
from meridian.protocol import Admin, Cancel, Fill, Message, NewOrder, NewStopOrder, Replace, encode
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from tests.unit.engine.engine_streams import INSTRUMENTS, Request, concretize, request_streams

PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def encoded(messages: list[Message]) -> list[bytes]:
    return [encode(message) for message in messages]


def run(engine: MatchingEngine, stream: list[Request]) -> list[list[Message]]:
    return [engine.process(request) for request in stream]


def assert_not_crossed(engine: MatchingEngine) -> None:
    for symbol in engine.instruments:
        bid, bid_qty, ask, ask_qty = engine.top_of_book(symbol)
        assert (bid == 0) == (bid_qty == 0)
        assert (ask == 0) == (ask_qty == 0)
        assert bid == 0 or ask == 0 or bid < ask, f"{symbol} crossed: {bid} >= {ask}"


def assert_stops_wait_beyond_the_last_trade(engine: MatchingEngine, last: int, symbol: str) -> None:
    """Between requests no stop is left triggered: waiting buy stops are above the last trade
    price, waiting sell stops below it (with no trade yet, any stop may wait)."""
    for stop in engine.waiting_stops(symbol):
        assert stop.stop_price > 0
        if last:
            assert stop.stop_price > last if stop.side == Side.BUY else stop.stop_price < last, stop


@PROPERTY_SETTINGS
@given(request_streams())
def test_engine_matches_reference_model_request_by_request(raw: list[Request]) -> None:
    stream = concretize(raw)
    engine, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    for request in stream:
        got, want = engine.process(request), reference.process(request)
        assert got == want, f"answers differ for {request}"
        assert [type(m) for m in got] == [type(m) for m in want]
        assert encoded(got) == encoded(want)
        assert got
        assert all(m[:2] == (request.request_id, engine.seq) for m in got)  # (request_id, seq)
        assert engine.last_flags == reference.last_flags
        assert engine.seq == reference.seq
        for symbol in engine.instruments:
            assert engine.top_of_book(symbol) == reference.top_of_book(symbol)
            assert engine.depth(symbol, 3) == reference.depth(symbol, 3)
            assert engine.waiting_stops(symbol) == reference.waiting_stops(symbol)
            assert_stops_wait_beyond_the_last_trade(engine, reference.last_price[symbol], symbol)
        assert engine.book_checksums() == reference.book_checksums()
        assert engine.checksum() == reference.checksum()


@PROPERTY_SETTINGS
@given(request_streams(), st.sampled_from([1, trade_id_base(7), trade_id_base(MAX_NODE_NUMBER)]))
def test_a_trade_id_base_shifts_the_trade_ids_and_nothing_else(raw: list[Request], base: int) -> None:
    stream = concretize(raw)
    engine = MatchingEngine(INSTRUMENTS, trade_id_base=base)
    reference = ReferenceEngine(INSTRUMENTS, trade_id_base=base)
    unnumbered = MatchingEngine(INSTRUMENTS)
    for request in stream:
        got, want, plain = engine.process(request), reference.process(request), unnumbered.process(request)
        assert encoded(got) == encoded(want), f"answers differ for {request}"
        shifted = [m._replace(trade_id=m.trade_id + base) if isinstance(m, Fill) else m for m in plain]
        assert got == shifted
        assert engine.checksum() == reference.checksum()
    assert engine.trade_id == base + unnumbered.trade_id
    restored = MatchingEngine.restore(engine.snapshot())
    assert (restored.trade_id, restored.checksum()) == (engine.trade_id, engine.checksum())


@PROPERTY_SETTINGS
@given(request_streams())
def test_book_never_crosses_and_quantities_are_conserved(raw: list[Request]) -> None:
    stream = concretize(raw)
    engine = MatchingEngine(INSTRUMENTS)
    filled_by_fills: dict[int, int] = {}
    for request in stream:
        for message in engine.process(request):
            if isinstance(message, Fill):
                for order_id in (message.buy_order_id, message.sell_order_id):
                    filled_by_fills[order_id] = filled_by_fills.get(order_id, 0) + message.quantity
        assert_not_crossed(engine)
    order_id = 1
    while (view := engine.order_status(order_id)) is not None:
        assert view.quantity == view.filled_quantity + view.leaves_quantity + view.cancelled_quantity
        assert min(view.filled_quantity, view.leaves_quantity, view.cancelled_quantity) >= 0
        assert view.filled_quantity == filled_by_fills.get(order_id, 0)
        order_id += 1


@PROPERTY_SETTINGS
@given(request_streams(), st.data())
def test_snapshot_and_restore_mid_stream_changes_nothing(raw: list[Request], data: st.DataObject) -> None:
    stream = concretize(raw)
    cut = data.draw(st.integers(0, len(stream)))
    straight = MatchingEngine(INSTRUMENTS)
    expected = run(straight, stream)
    first = MatchingEngine(INSTRUMENTS)
    head = run(first, stream[:cut])
    snapshot = first.snapshot()
    restored = MatchingEngine.restore(snapshot)
    assert restored.checksum() == first.checksum()
    assert restored.snapshot() == snapshot
    tail = run(restored, stream[cut:])
    assert [encoded(m) for m in head + tail] == [encoded(m) for m in expected]
    assert restored.checksum() == straight.checksum()
    assert restored.snapshot() == straight.snapshot()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_streams())
def test_same_requests_give_byte_identical_answers_and_state(raw: list[Request]) -> None:
    stream = concretize(raw)
    one, two = MatchingEngine(INSTRUMENTS), MatchingEngine(INSTRUMENTS)
    assert [encoded(m) for m in run(one, stream)] == [encoded(m) for m in run(two, stream)]
    assert one.checksum() == two.checksum()
    assert one.snapshot() == two.snapshot()


# Any value each field can carry on the wire (the engine's input is wire frames): request and order
# ids are u64, quantities and prices i64, the one-byte fields 0..255.
_ints = st.integers(-(2**63), 2**63 - 1)
_ids = st.integers(0, 2**64 - 1)
_small = st.integers(0, 12)
_prices = st.integers(0, 2000)
_text = st.sampled_from(["", "AAA", "BBB", "ACC1", "ACC2", "C1", "ZZZ"])
_wild_requests = st.one_of(
    st.builds(NewOrder, _ids, _text, _text, _text, _small, _small, _small, _small, _ints, _ints),
    st.builds(
        NewOrder, _ids, _text, _text, _text, _small, _small, _small, _small, st.integers(-3, 12), _prices
    ),
    st.builds(NewStopOrder, _ids, _text, _text, _text, _small, _small, _small, _small, _ints, _ints, _ints),
    st.builds(
        NewStopOrder,
        _ids,
        _text,
        _text,
        _text,
        _small,
        _small,
        _small,
        _small,
        st.integers(-3, 12),
        _prices,
        _prices,
    ),
    st.builds(Cancel, _ids, _text, _text, _small),
    st.builds(Replace, _ids, _text, _text, _small, _ints, _ints),
    st.builds(Admin, _ids, _text, _small),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_wild_requests, min_size=1, max_size=40))
def test_any_field_values_are_answered_never_raised(stream: list[Request]) -> None:
    engine, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    for seq, request in enumerate(stream, 1):
        out = engine.process(request)
        assert out
        assert all(m[:2] == (request.request_id, seq) for m in out)
        assert encoded(out) == encoded(reference.process(request))
    assert_not_crossed(engine)
    assert MatchingEngine.restore(engine.snapshot()).checksum() == engine.checksum()


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(request_streams(max_size=300))
def test_long_streams_match_the_reference_model(raw: list[Request]) -> None:
    stream = concretize(raw)
    engine, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    for request in stream:
        assert encoded(engine.process(request)) == encoded(reference.process(request))
        assert_not_crossed(engine)
    assert engine.checksum() == reference.checksum()
    assert MatchingEngine.restore(engine.snapshot()).checksum() == engine.checksum()
