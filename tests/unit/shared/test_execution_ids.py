"""Execution ids and the trade ids they name: one canonical text per trade."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.executions import MAX_NODE_NUMBER, TRADE_COUNTER_BITS, execution_id, trade_id_base, trade_id_of


@given(st.integers(0, MAX_NODE_NUMBER), st.integers(0, (1 << TRADE_COUNTER_BITS) - 1))
def test_an_execution_id_names_its_trade_id(node: int, counter: int) -> None:
    trade_id = trade_id_base(node) + counter
    assert trade_id_of(execution_id(trade_id)) == trade_id


@pytest.mark.parametrize(
    "text",
    ["", "7", "1-", "-5", "01-5", "1-05", "1-+5", "x-1", "1-5-2", "65536-1", f"1-{1 << 48}", "\uff11-1"],
)
def test_other_text_names_no_trade(text: str) -> None:
    with pytest.raises(ValueError, match="is not an execution id"):
        trade_id_of(text)
