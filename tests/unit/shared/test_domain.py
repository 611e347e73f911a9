"""Instrument rules: price grid, bands and validation of the definition itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meridian.domain import MAX_PRICE, Instrument, Side


def test_prices_convert_to_integer_units_and_back() -> None:
    inst = Instrument("AAPL", price_scale=2)
    assert inst.to_ticks(Decimal("190.05")) == 19005
    assert inst.to_price(19005) == Decimal("190.05")
    with pytest.raises(ValueError, match="decimal places"):
        inst.to_ticks(Decimal("190.055"))


def test_band_is_symmetric_in_basis_points_and_open_without_reference() -> None:
    inst = Instrument("ESZ6", band_bps=500)
    assert inst.band(10_000) == (9_500, 10_500)
    assert inst.band(0) == (1, MAX_PRICE)
    assert Instrument("X", band_bps=0).band(10_000) == (1, MAX_PRICE)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbol": ""},
        {"symbol": "NINECHARS"},
        {"symbol": "ÄPL"},
        {"symbol": "A", "tick_size": 0},
        {"symbol": "A", "lot_size": -1},
        {"symbol": "A", "band_bps": -5},
    ],
)
def test_invalid_instrument_definitions_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        Instrument(**kwargs)  # type: ignore[arg-type]


def test_side_opposite() -> None:
    assert Side.BUY.opposite is Side.SELL
    assert Side.SELL.opposite is Side.BUY
