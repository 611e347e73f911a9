"""Average-cost position maths: pure functions over exact decimals.

A position keeps its signed quantity, the exact cost of that open quantity (``cost_basis``, always
non-negative) and the P&L realized so far. Adding to a position adds ``price * quantity`` to the
cost; reducing releases a proportional share of the cost and realises the difference against
the fill price; a fill larger than the position closes it and opens the remainder on the other
side (a flip). The only rounding is the released share of a partial reduction, quantised to
``MONEY_QUANTUM``; closing a position releases whatever cost is left, so once a position is flat
its realized P&L equals the exact cash flow of its trades.

The ledger applies fills in its own recording order (``trades.ledger_seq``), and
:func:`rebuild_positions` folds the history in that same order, so the two always agree.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

MONEY_QUANTUM = Decimal("1E-10")  # NUMERIC(38, 10) in the schema
ZERO = Decimal(0)
# Enough digits for any price (< 10**15 units) times any quantity (< 10**12) and then some.
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])


@dataclass(frozen=True, slots=True)
class Position:
    quantity: int = 0
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    trade_count: int = 0

    @property
    def average_price(self) -> Decimal:
        """Average entry price of the open quantity (zero when flat), rounded to the money quantum."""
        if self.quantity == 0:
            return ZERO
        return _CONTEXT.divide(self.cost_basis, Decimal(abs(self.quantity))).quantize(
            MONEY_QUANTUM, context=_CONTEXT
        )


@dataclass(frozen=True, slots=True)
class Fill:
    """One side of a trade as it affects one account: ``quantity`` is signed (+buy, -sell)."""

    account: str
    symbol: str
    quantity: int
    price: Decimal


def apply_fill(position: Position, quantity: int, price: Decimal) -> Position:
    """The position after a fill of signed ``quantity`` at ``price``."""
    if quantity == 0:
        raise ValueError("a fill has a non-zero quantity")
    if price <= 0:
        raise ValueError("a fill has a positive price")
    held, cost, realized = position.quantity, position.cost_basis, position.realized_pnl
    count = position.trade_count + 1
    if held == 0 or (held > 0) == (quantity > 0):
        added = _CONTEXT.multiply(price, Decimal(abs(quantity)))
        return Position(held + quantity, _CONTEXT.add(cost, added), realized, count)

    direction = 1 if held > 0 else -1  # +1 closing a long (selling), -1 closing a short (buying)
    closing = min(abs(quantity), abs(held))
    if closing == abs(held):
        released = cost
    else:
        share = _CONTEXT.divide(_CONTEXT.multiply(cost, Decimal(closing)), Decimal(abs(held)))
        released = share.quantize(MONEY_QUANTUM, context=_CONTEXT)
    proceeds = _CONTEXT.multiply(price, Decimal(closing))
    pnl = _CONTEXT.subtract(proceeds, released) if direction > 0 else _CONTEXT.subtract(released, proceeds)
    realized = _CONTEXT.add(realized, pnl)
    remaining_cost = _CONTEXT.subtract(cost, released)
    new_quantity = held + quantity
    if abs(quantity) > abs(held):  # flip: the remainder opens a position on the other side
        remaining_cost = _CONTEXT.multiply(price, Decimal(abs(new_quantity)))
    return Position(new_quantity, remaining_cost, realized, count)


def trade_fills(
    symbol: str, price: Decimal, quantity: int, buy_account: str, sell_account: str
) -> tuple[Fill, Fill]:
    """The two fills of one trade: the buyer gains ``quantity``, the seller loses it."""
    return (
        Fill(buy_account, symbol, quantity, price),
        Fill(sell_account, symbol, -quantity, price),
    )


def rebuild_positions(fills: Iterable[Fill]) -> dict[tuple[str, str], Position]:
    """Fold a fill history (in ledger order) into positions keyed by (account, symbol)."""
    book: dict[tuple[str, str], Position] = {}
    for fill in fills:
        key = (fill.account, fill.symbol)
        book[key] = apply_fill(book.get(key, Position()), fill.quantity, fill.price)
    return book
