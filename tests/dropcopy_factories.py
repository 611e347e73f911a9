"""Drop-copy records of the matching node (``meridian.executions.drop_copy_record``) for the tests."""

from __future__ import annotations

from typing import Any

from meridian.domain import Side
from meridian.executions import drop_copy_record, trade_id_base
from meridian.protocol import Fill

BASE_NS = 1_772_461_800_000_000_000  # 2026-03-02T14:30:00Z


def fill(
    counter: int,
    *,
    node: int = 1,
    symbol: str = "AAPL",
    price_ticks: int = 19025,
    quantity: int = 10,
    buyer: str = "ACC-BUY",
    seller: str = "ACC-SELL",
    aggressor: Side = Side.BUY,
    seq: int | None = None,
) -> Fill:
    """The node's ``counter``-th trade (trade id = the node's base + counter)."""
    return Fill(
        0,
        counter if seq is None else seq,
        trade_id_base(node) + counter,
        symbol,
        price_ticks,
        quantity,
        int(aggressor),
        1000 + counter,
        2000 + counter,
        buyer,
        seller,
        f"b-{counter}",
        f"s-{counter}",
        0,
        0,
    )


def record(counter: int, *, price: str = "190.25", **fill_fields: Any) -> dict[str, int | str]:
    """The drop-copy JSON object of ``fill(counter, ...)``."""
    return drop_copy_record(fill(counter, **fill_fields), price, BASE_NS + counter * 1_000)
