"""Snapshots: canonical bytes, exact restore, the previous engine's snapshots, refusal of anything
inconsistent."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from meridian.domain import OrderType, Side, TimeInForce
from meridian.protocol import Ack, Admin, AdminAction, Cancel, CancelAck, NewStopOrder, Replace
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from meridian_hotpath.engine.state import BookRecord, EngineState, encode_snapshot
from tests.unit.engine.engine_streams import INSTRUMENTS, Request, new_order

HEADER = struct.Struct("<8sIQQQBI")
# busy_engine()'s snapshot as the engine wrote it before stop orders (version 2, no stops section).
VERSION_2_SNAPSHOT = Path(__file__).parent / "fixtures" / "busy-engine-v2.snapshot"


def busy_requests() -> list[Request]:
    return [
        new_order(1, Side.BUY, 30, 995, client_order_id="A"),
        new_order(2, Side.BUY, 20, 995, account="ACC2", tif=TimeInForce.DAY),
        new_order(3, Side.SELL, 10, 995, account="ACC3"),
        new_order(4, Side.SELL, 40, 1005, account="ACC3"),
        new_order(5, Side.SELL, 5, 201, symbol="BBB"),
        Cancel(6, "ACC3", "AAA", 4),
        Replace(7, "ACC2", "AAA", 2, 10, 990),
        Admin(8, "BBB", AdminAction.HALT),
    ]


def busy_engine() -> MatchingEngine:
    engine = MatchingEngine(INSTRUMENTS)
    for request in busy_requests():
        engine.process(request)
    return engine


def later_requests() -> list[Request]:
    return [
        new_order(9, Side.SELL, 50, 990, account="ACC3"),
        new_order(10, Side.BUY, 10, 995, client_order_id="A"),  # a duplicate of a live order
        new_order(11, Side.BUY, 10, 995, account="ACC3", client_order_id="C4"),  # of a finished one
        new_order(12, Side.BUY, 1, 201, symbol="BBB"),
        Admin(13, "", AdminAction.END_OF_DAY),
    ]


def test_restore_reproduces_state_and_behaviour() -> None:
    engine = busy_engine()
    data = engine.snapshot()
    restored = MatchingEngine.restore(data)
    assert restored.snapshot() == data
    assert restored.checksum() == engine.checksum()
    assert restored.book_checksums() == engine.book_checksums()
    assert (
        (restored.seq, restored.order_count, restored.trade_id)
        == (engine.seq, 5, engine.trade_id)
        == (8, 5, 1)
    )
    assert restored.find_client_order("ACC1", "A") == 1
    assert restored.find_client_order("ACC3", "C4") == 4  # finished, still remembered today
    for order_id in range(1, 7):
        assert restored.order_status(order_id) == engine.order_status(order_id)
    for request in later_requests():
        assert restored.process(request) == engine.process(request)
        assert restored.last_flags == engine.last_flags
    assert restored.checksum() == engine.checksum()
    assert restored.snapshot() == engine.snapshot()


def test_snapshot_is_canonical_and_ends_with_its_checksum() -> None:
    engine = busy_engine()
    data = engine.snapshot()
    magic, version, seq, trade_id, order_count, halt, epoch = HEADER.unpack_from(data)
    assert (magic, version, seq, trade_id, order_count, halt, epoch) == (b"MRDNENG2", 3, 8, 1, 5, 0, 0)
    assert struct.unpack_from("<Q", data, len(data) - 8)[0] == engine.checksum()
    assert data == busy_engine().snapshot()


def test_a_version_2_snapshot_restores_into_the_same_state_and_behaviour() -> None:
    restored = MatchingEngine.restore(VERSION_2_SNAPSHOT.read_bytes())
    straight = busy_engine()
    assert restored.checksum() == straight.checksum()
    assert restored.snapshot() == straight.snapshot()  # written again as the current version
    for request in later_requests():
        assert restored.process(request) == straight.process(request)
    assert restored.checksum() == straight.checksum()


def stop_requests() -> list[Request]:
    """Stops of both kinds waiting on both sides of AAA (last trade 995), and one on BBB."""
    return [
        NewStopOrder(20, "S1", "ACC1", "AAA", Side.BUY, OrderType.MARKET, TimeInForce.GTC, 0, 10, 0, 1000),
        NewStopOrder(21, "S2", "ACC2", "AAA", Side.BUY, OrderType.LIMIT, TimeInForce.DAY, 0, 10, 1010, 1000),
        NewStopOrder(22, "S3", "ACC3", "AAA", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, 0, 20, 980, 985),
        Admin(23, "BBB", AdminAction.RESUME),
        NewStopOrder(24, "", "ACC3", "BBB", Side.SELL, OrderType.MARKET, TimeInForce.IOC, 0, 1, 0, 195),
        new_order(25, Side.SELL, 40, 1005, account="ACC2"),
    ]


def test_waiting_stop_orders_survive_a_snapshot_and_fire_as_they_would_have() -> None:
    engine = busy_engine()
    for request in stop_requests():
        engine.process(request)
    assert [v.stop_price for v in engine.waiting_stops("AAA")] == [1000, 1000, 985]
    data = engine.snapshot()
    assert HEADER.unpack_from(data)[1] == 3
    restored = MatchingEngine.restore(data)
    assert restored.snapshot() == data
    assert restored.waiting_stops("AAA") == engine.waiting_stops("AAA")
    lift = new_order(30, Side.BUY, 60, 1010, account="ACC3")  # trades at 1005: both buy stops fire
    answer = restored.process(lift)
    assert answer == engine.process(lift)
    assert [(type(m).__name__, m.order_id) for m in answer if isinstance(m, Ack | CancelAck)] == [
        ("Ack", 11),
        ("Ack", 6),  # the stop-market order fires, finds no ask left ...
        ("CancelAck", 6),  # ... and its remainder goes (NO_LIQUIDITY)
        ("Ack", 7),  # the stop-limit order fires and rests at 1010
    ]
    assert restored.checksum() == engine.checksum()
    assert [v.order_id for v in restored.waiting_stops("AAA")] == [8]


def test_snapshot_size_follows_live_orders_not_history() -> None:
    engine = MatchingEngine(INSTRUMENTS)
    engine.process(new_order(1, Side.BUY, 10, 995, client_order_id=""))
    small = len(engine.snapshot())
    for request_id in range(2, 2002, 2):  # a thousand orders that come and go, without client ids
        engine.process(new_order(request_id, Side.BUY, 10, 990, client_order_id=""))
        engine.process(Cancel(request_id + 1, "ACC1", "AAA", engine.order_count))
    assert engine.live_order_count == 1
    assert len(engine.snapshot()) == small


def reference_state(reference: ReferenceEngine) -> EngineState:
    """The reference engine's state as the previous engine's (version 1, JSON) snapshot held it."""
    books = [
        BookRecord(
            symbol,
            symbol in reference.halted,
            reference.last_price[symbol],
            [o.order_id for o in reference.resting(symbol, Side.BUY)],
            [o.order_id for o in reference.resting(symbol, Side.SELL)],
        )
        for symbol in reference.instruments
    ]
    orders = [order.record() for _, order in sorted(reference.orders.items())]
    return EngineState(
        list(reference.instruments.values()),
        reference.seq,
        reference.trade_id,
        reference.global_halt,
        books,
        orders,
        reference.checksum(),
    )


def test_a_previous_engine_snapshot_restores_into_the_same_state() -> None:
    reference = ReferenceEngine(INSTRUMENTS)
    for request in busy_requests():
        reference.process(request)
    restored = MatchingEngine.restore(encode_snapshot(reference_state(reference)))
    assert restored.checksum() == reference.checksum()
    for request in later_requests():
        assert restored.process(request) == reference.process(request)
    assert restored.checksum() == reference.checksum()


def _rewrite(change: Callable[[bytearray], None]) -> bytes:
    data = bytearray(busy_engine().snapshot())
    change(data)
    return bytes(data)


def _first_order_offset(data: bytes | bytearray) -> int:
    """Where the first resting order of the first book starts."""
    at = HEADER.size + 4
    for _ in INSTRUMENTS:
        (length,) = struct.unpack_from("<I", data, at)
        at += 4 + length
    (resting,) = struct.unpack_from("<I", data, at + 25)
    assert resting > 0
    return at + 29


def _more_leaves(data: bytearray) -> None:
    at = _first_order_offset(data) + 64
    struct.pack_into("<q", data, at, struct.unpack_from("<q", data, at)[0] + 10)


def _other_side(data: bytearray) -> None:
    data[_first_order_offset(data) + 44] = 3


def _bad_order_id(data: bytearray) -> None:
    struct.pack_into("<Q", data, _first_order_offset(data), 99)


def _halt_everything(data: bytearray) -> None:
    data[HEADER.size - 5] = 1


def _truncate(data: bytearray) -> None:
    del data[-20:]


def _version(data: bytearray) -> None:
    struct.pack_into("<I", data, 8, 4)


def _labelled_version_2(data: bytearray) -> None:
    struct.pack_into("<I", data, 8, 2)  # a version 3 layout (stops sections) read as version 2


def _stop_price(data: bytearray) -> None:
    engine = busy_engine()
    for request in stop_requests():
        engine.process(request)
    data[:] = engine.snapshot()
    at = data.index(b"S3")  # the sell stop: its stop price follows its 88-byte order record
    struct.pack_into("<q", data, at - 8 + 88, 990)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a snapshot",
        b"MRDNENG2",
        b'{"format": "something else", "version": 1}',
        _rewrite(_more_leaves),
        _rewrite(_other_side),
        _rewrite(_bad_order_id),
        _rewrite(_halt_everything),
        _rewrite(_truncate),
        _rewrite(_version),
        _rewrite(_labelled_version_2),
        _rewrite(_stop_price),
    ],
)
def test_restore_refuses_malformed_or_inconsistent_snapshots(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        MatchingEngine.restore(data)
