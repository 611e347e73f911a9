"""Property: incremental positions in PostgreSQL == a pure rebuild from the trade history.

Random trade streams over a few accounts and symbols, with redeliveries mixed in (a repeated
execution id re-sends that execution's trade), go through the real writer; the stored positions
must equal the pure fold of the distinct trades in recording order, number for number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meridian.events import TradeExecuted
from meridian.ledger import positions, rebuild_from_history, record_trade
from meridian.ledger.positions import rebuild_positions, trade_fills
from tests.pipeline_factories import trade

accounts = st.sampled_from(["A", "B", "C"])
trade_specs = st.tuples(
    st.integers(min_value=0, max_value=25),  # execution id: small range, so repeats are redeliveries
    st.sampled_from(["AAPL", "MSFT"]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
    st.integers(min_value=1, max_value=300),
    accounts,
    accounts,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(trade_specs, min_size=1, max_size=40))
def test_incremental_equals_rebuild(
    ledger_conn: psycopg.Connection[Any], specs: list[tuple[int, str, Decimal, int, str, str]]
) -> None:
    ledger_conn.execute("TRUNCATE trades, positions")
    applied = []
    sent: dict[int, TradeExecuted] = {}
    for execution, symbol, price, quantity, buyer, seller in specs:
        event = sent.setdefault(
            execution,
            trade(f"x{execution}", symbol=symbol, price=price, quantity=quantity, buyer=buyer, seller=seller),
        )
        if record_trade(ledger_conn, event):
            applied.append(event)
    assert len(applied) == len({s[0] for s in specs})

    expected = rebuild_positions(
        fill
        for t in applied
        for fill in trade_fills(t.symbol, t.price, t.quantity, t.buy_account, t.sell_account)
    )
    assert rebuild_from_history(ledger_conn) == expected
    stored = {(p.account, p.symbol): p for p in positions(ledger_conn, None)}
    assert stored.keys() == expected.keys()
    for key, want in expected.items():
        got = stored[key]
        assert (got.quantity, got.cost_basis, got.realized_pnl, got.trade_count) == (
            want.quantity,
            want.cost_basis,
            want.realized_pnl,
            want.trade_count,
        )
        assert got.average_price == want.average_price
    for symbol in ("AAPL", "MSFT"):
        assert sum(p.quantity for (_, s), p in expected.items() if s == symbol) == 0
