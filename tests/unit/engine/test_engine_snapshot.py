"""Snapshots: canonical bytes, exact restore, and refusal of anything inconsistent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from meridian.domain import Side, TimeInForce
from meridian.protocol import Admin, AdminAction, Cancel, Replace
from meridian_hotpath.engine import MatchingEngine
from tests.unit.engine.engine_streams import INSTRUMENTS, new_order


def busy_engine() -> MatchingEngine:
    engine = MatchingEngine(INSTRUMENTS)
    engine.process(new_order(1, Side.BUY, 30, 995, client_order_id="A"))
    engine.process(new_order(2, Side.BUY, 20, 995, account="ACC2", tif=TimeInForce.DAY))
    engine.process(new_order(3, Side.SELL, 10, 995, account="ACC3"))
    engine.process(new_order(4, Side.SELL, 40, 1005, account="ACC3"))
    engine.process(new_order(5, Side.SELL, 5, 201, symbol="BBB"))
    engine.process(Cancel(6, "ACC3", "AAA", 4))
    engine.process(Replace(7, "ACC2", "AAA", 2, 10, 990))
    engine.process(Admin(8, "BBB", AdminAction.HALT))
    return engine


def test_restore_reproduces_state_and_behaviour() -> None:
    engine = busy_engine()
    data = engine.snapshot()
    restored = MatchingEngine.restore(data)
    assert restored.snapshot() == data
    assert restored.checksum() == engine.checksum()
    assert restored.book_checksums() == engine.book_checksums()
    assert restored.seq == engine.seq == 8
    assert restored.find_client_order("ACC1", "A") == 1
    for order_id in range(1, 7):
        assert restored.order_status(order_id) == engine.order_status(order_id)
    for request in (
        new_order(9, Side.SELL, 50, 990, account="ACC3"),
        new_order(10, Side.BUY, 10, 995, client_order_id="A"),
        new_order(11, Side.BUY, 1, 201, symbol="BBB"),
        Admin(12, "", AdminAction.END_OF_DAY),
    ):
        assert restored.process(request) == engine.process(request)
        assert restored.last_flags == engine.last_flags
    assert restored.checksum() == engine.checksum()


def test_snapshot_is_canonical_json_with_its_checksum() -> None:
    engine = busy_engine()
    document = json.loads(engine.snapshot())
    assert document["format"] == "meridian-engine-snapshot"
    assert document["checksum"] == engine.checksum()
    assert engine.snapshot() == busy_engine().snapshot()


def _tampered(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(busy_engine().snapshot())
    change(document)
    return json.dumps(document).encode()


def _set_leaves(document: dict[str, Any]) -> None:
    document["orders"][0][10] += 10


def _list_twice(document: dict[str, Any]) -> None:
    document["books"][0][3].append(document["books"][0][3][0])


def _unknown_order(document: dict[str, Any]) -> None:
    document["books"][0][3].append(99)


def _wrong_side(document: dict[str, Any]) -> None:
    document["books"][0][4].extend(document["books"][0][3])
    document["books"][0][3] = []


def _drop_resting(document: dict[str, Any]) -> None:
    document["books"][0][3] = []


def _halt(document: dict[str, Any]) -> None:
    document["global_halt"] = True


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "something else", "version": 1}',
        _tampered(lambda d: d.update(version=2)),
        _tampered(lambda d: d.pop("orders")),
        _tampered(_set_leaves),
        _tampered(_list_twice),
        _tampered(_unknown_order),
        _tampered(_wrong_side),
        _tampered(_drop_resting),
        _tampered(_halt),
    ],
)
def test_restore_refuses_malformed_or_inconsistent_snapshots(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        MatchingEngine.restore(data)
