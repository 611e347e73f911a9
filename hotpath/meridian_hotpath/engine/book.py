"""The matching engine's state: orders, price levels and one book per instrument.

These are plain classes with fixed attributes so that the interpreter reads them through slots and
mypyc compiles them into C structs. Prices are stored as *keys*: a bid's key is its price and an
ask's key is minus its price, so on both sides the best level is the largest key, kept at the end of
an ascending list, and "crosses" is one comparison of keys whatever the side.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Final, NamedTuple

from meridian.domain import MAX_PRICE, Instrument
from meridian_hotpath.engine.codes import STP_ALLOW, STP_CANCEL_OLDEST
from meridian_hotpath.engine.state import OrderRecord

BUY: Final = 1
SELL: Final = 2
LIMIT: Final = 1
MARKET: Final = 2
GTC: Final = 1
IOC: Final = 2
FOK: Final = 3
DAY: Final = 4

STATUS_NEW: Final = 1
STATUS_PARTIALLY_FILLED: Final = 2
STATUS_FILLED: Final = 3
STATUS_CANCELLED: Final = 4


class Order:
    """One order for its whole life; ``leaves > 0`` exactly while it rests in a book.

    ``quantity`` is the order's total size: ``quantity == filled + leaves + cancelled`` always holds,
    and a replace changes ``quantity`` to ``filled + new leaves``.
    """

    __slots__ = (
        "account",
        "cancelled",
        "client_order_id",
        "filled",
        "flags",
        "leaves",
        "order_id",
        "order_type",
        "price",
        "quantity",
        "side",
        "symbol",
        "time_in_force",
    )

    def __init__(
        self,
        order_id: int,
        client_order_id: str,
        account: str,
        symbol: str,
        side: int,
        order_type: int,
        time_in_force: int,
        flags: int,
        price: int,
        quantity: int,
    ) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.account = account
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.flags = flags
        self.price = price
        self.quantity = quantity
        self.leaves = quantity
        self.filled = 0
        self.cancelled = 0


def order_status(order: Order) -> int:
    if order.leaves > 0:
        return STATUS_PARTIALLY_FILLED if order.filled > 0 else STATUS_NEW
    return STATUS_CANCELLED if order.cancelled > 0 else STATUS_FILLED


class OrderView(NamedTuple):
    """A read-only picture of one order, for lookups by tests, the node and recovery."""

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    price: int
    quantity: int
    leaves_quantity: int
    filled_quantity: int
    cancelled_quantity: int
    status: int


def order_view(order: Order) -> OrderView:
    return OrderView(
        order.order_id, order.client_order_id, order.account, order.symbol, order.side,
        order.order_type, order.time_in_force, order.flags, order.price, order.quantity,
        order.leaves, order.filled, order.cancelled, order_status(order),
    )  # fmt: skip


class Book:
    """The resting orders of one instrument plus its trading state.

    ``bid_levels``/``ask_levels`` map a key to the FIFO queue of orders at that price, and
    ``bid_keys``/``ask_keys`` list the same keys in ascending order (best last). Keeping the prices
    in a sorted list (insort; best at the end, so matching pops in O(1)) is cheaper here than heaps
    with lazy deletion, and it gives depth and snapshots the levels in order for free.
    """

    __slots__ = (
        "ask_keys",
        "ask_levels",
        "band_bps",
        "band_high",
        "band_low",
        "bid_keys",
        "bid_levels",
        "halted",
        "instrument",
        "last_price",
        "lot_size",
        "max_quantity",
        "reference_price",
        "symbol",
        "tick_size",
        "trading",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.tick_size = instrument.tick_size
        self.lot_size = instrument.lot_size
        self.max_quantity = instrument.max_order_quantity
        self.reference_price = instrument.reference_price
        self.band_bps = instrument.band_bps
        self.bid_levels: dict[int, deque[Order]] = {}
        self.ask_levels: dict[int, deque[Order]] = {}
        self.bid_keys: list[int] = []
        self.ask_keys: list[int] = []
        self.halted = False
        self.trading = True
        self.last_price = 0
        self.band_low = 0
        self.band_high = 0
        self.set_last_price(0)

    def set_last_price(self, price: int) -> None:
        """Record the last trade price and move the price band around it.

        The band is ``Instrument.band(price or reference_price)``, computed here on plain ints (the
        trade that moves the price pays for it; the tests hold the two equal).
        """
        self.last_price = price
        reference = price or self.reference_price
        if reference <= 0 or self.band_bps == 0:
            self.band_low, self.band_high = 1, MAX_PRICE
            return
        width = reference * self.band_bps // 10_000
        low = reference - width
        self.band_low = low if low > 1 else 1
        self.band_high = reference + width

    def levels_of(self, side: int) -> dict[int, deque[Order]]:
        return self.bid_levels if side == BUY else self.ask_levels

    def keys_of(self, side: int) -> list[int]:
        return self.bid_keys if side == BUY else self.ask_keys

    def side_levels(self, side: int) -> list[tuple[int, deque[Order]]]:
        """The levels of one side, best first, as (price, queue)."""
        levels = self.levels_of(side)
        sign = 1 if side == BUY else -1
        return [(key * sign, levels[key]) for key in reversed(self.keys_of(side))]

    def resting_orders(self) -> list[Order]:
        """Every resting order: bids then asks, each side in priority order."""
        return [order for side in (BUY, SELL) for _, queue in self.side_levels(side) for order in queue]


def record(order: Order) -> OrderRecord:
    return OrderRecord(
        order.order_id, order.client_order_id, order.account, order.symbol, order.side, order.order_type,
        order.time_in_force, order.flags, order.price, order.quantity, order.leaves, order.filled,
        order.cancelled,
    )  # fmt: skip


def unlink(book: Book, order: Order) -> None:
    """Take a resting order out of its level (its leaves are the caller's business)."""
    if order.side == BUY:
        levels, keys, key = book.bid_levels, book.bid_keys, order.price
    else:
        levels, keys, key = book.ask_levels, book.ask_keys, -order.price
    queue = levels[key]
    if len(queue) == 1:
        del levels[key]
        del keys[bisect_left(keys, key)]
    else:
        queue.remove(order)


def rest(book: Book, order: Order) -> None:
    """Put an order at the back of its price level."""
    if order.side == BUY:
        levels, keys, key = book.bid_levels, book.bid_keys, order.price
    else:
        levels, keys, key = book.ask_levels, book.ask_keys, -order.price
    queue = levels.get(key)
    if queue is None:
        levels[key] = deque((order,))
        insort(keys, key)
    else:
        queue.append(order)


def fok_fillable(
    levels: dict[int, deque[Order]], keys: list[int], limit_key: int, quantity: int, account: str, stp: int
) -> bool:
    """Whether matching would fill ``quantity`` entirely, walking the book exactly as matching does."""
    available = 0
    for key in reversed(keys):
        if key < limit_key:
            return False
        for resting in levels[key]:
            if stp != STP_ALLOW and resting.account == account:
                if stp == STP_CANCEL_OLDEST:
                    continue
                return False
            available += resting.leaves
            if available >= quantity:
                return True
    return False
