"""Average-cost position maths: adds, reductions, flips, and exact cash P&L once flat."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.ledger.positions import MONEY_QUANTUM, Fill, Position, apply_fill, rebuild_positions

D = Decimal


def test_adding_to_a_long_averages_the_cost() -> None:
    p = apply_fill(apply_fill(Position(), 10, D("100")), 30, D("104"))
    assert (p.quantity, p.cost_basis, p.average_price) == (40, D("4120"), D("103"))
    assert p.realized_pnl == 0
    assert p.trade_count == 2


def test_selling_part_of_a_long_realises_against_the_average() -> None:
    p = apply_fill(apply_fill(Position(), 40, D("103")), -10, D("110"))
    assert p.quantity == 30
    assert p.realized_pnl == D("70")
    assert p.average_price == D("103")


def test_covering_a_short_realises_the_drop() -> None:
    p = apply_fill(apply_fill(Position(), -5, D("50")), 5, D("45"))
    assert (p.quantity, p.cost_basis, p.realized_pnl) == (0, D(0), D("25"))
    assert p.average_price == 0


def test_flip_long_to_short_closes_then_opens_at_the_fill_price() -> None:
    p = apply_fill(apply_fill(Position(), 10, D("100")), -25, D("90"))
    assert p.quantity == -15
    assert p.realized_pnl == D("-100")
    assert p.cost_basis == D("1350")
    assert p.average_price == D("90")


def test_flip_short_to_long() -> None:
    p = apply_fill(apply_fill(Position(), -3, D("20.5")), 5, D("20"))
    assert (p.quantity, p.realized_pnl, p.average_price) == (2, D("1.5"), D("20"))


def test_partial_reduction_rounds_only_the_released_cost() -> None:
    p = apply_fill(apply_fill(apply_fill(Position(), 1, D("1")), 2, D("2")), -1, D("3"))
    # cost 5 over 3 units: releasing one third is 1.6666666667 at ten places
    assert p.realized_pnl == D("3") - D("1.6666666667")
    assert p.cost_basis == D("5") - D("1.6666666667")
    assert p.realized_pnl.as_tuple().exponent >= MONEY_QUANTUM.as_tuple().exponent  # type: ignore[operator]


@pytest.mark.parametrize(("quantity", "price"), [(0, D("1")), (1, D("0")), (-1, D("-2"))])
def test_rejects_empty_or_unpriced_fills(quantity: int, price: Decimal) -> None:
    with pytest.raises(ValueError, match="fill"):
        apply_fill(Position(), quantity, price)


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
fills = st.lists(
    st.tuples(st.integers(min_value=-500, max_value=500).filter(bool), prices), min_size=1, max_size=60
)


@given(fills)
def test_quantity_is_the_sum_and_flat_means_exact_cash_pnl(history: list[tuple[int, Decimal]]) -> None:
    position = Position()
    for quantity, price in history:
        position = apply_fill(position, quantity, price)
    assert position.quantity == sum(q for q, _ in history)
    assert position.cost_basis >= 0
    cash = sum((-q * p for q, p in history), D(0))
    # Marking the open quantity at its own cost turns the position into cash exactly.
    sign = 1 if position.quantity >= 0 else -1
    assert position.realized_pnl == cash + sign * position.cost_basis


@given(fills)
def test_rebuild_folds_per_account_and_symbol(history: list[tuple[int, Decimal]]) -> None:
    tagged = [Fill("A" if i % 2 else "B", "AAPL", q, p) for i, (q, p) in enumerate(history)]
    rebuilt = rebuild_positions(tagged)
    for account in ("A", "B"):
        expected = Position()
        for fill in tagged:
            if fill.account == account:
                expected = apply_fill(expected, fill.quantity, fill.price)
        assert rebuilt.get((account, "AAPL"), Position()) == expected
