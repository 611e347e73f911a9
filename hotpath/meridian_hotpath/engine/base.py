"""EngineBase: the matching engine's state, its queries, checksums and snapshots.

``MatchingEngine`` (in ``core``) adds the request handling on top; keeping the state and its
read-side here leaves the hot path in one short module.
"""

from __future__ import annotations

from collections.abc import Iterable

from meridian.domain import Instrument
from meridian_hotpath.engine.book import BUY, SELL, Book, Order, OrderView, order_view, record, rest
from meridian_hotpath.engine.codes import FLAG_DUPLICATE, FLAG_REPLACED
from meridian_hotpath.engine.state import (
    BookRecord,
    EngineState,
    book_checksum,
    encode_snapshot,
    engine_checksum,
)

TRADE_ID_LIMIT = 1 << 64  # trade ids travel as u64 on the wire


class EngineBase:
    """Books, orders and counters of one engine, and everything that reads them."""

    def __init__(self, instruments: Iterable[Instrument], trade_id_base: int = 0) -> None:
        """``trade_id_base`` is the trade id before the first trade (the node's number in its top
        bits, ``meridian.executions.trade_id_base``): the first trade gets ``trade_id_base + 1``."""
        if not 0 <= trade_id_base < TRADE_ID_LIMIT:
            raise ValueError(f"trade id base must be a u64 below {TRADE_ID_LIMIT}, got {trade_id_base}")
        self.instruments: dict[str, Instrument] = {}
        self._books: dict[str, Book] = {}
        for instrument in instruments:
            if instrument.symbol in self._books:
                raise ValueError(f"instrument {instrument.symbol} given twice")
            self.instruments[instrument.symbol] = instrument
            self._books[instrument.symbol] = Book(instrument)
        self.seq = 0
        self.last_flags = 0  # protocol Flag bits (DUPLICATE, REPLACED) for the answer just returned
        self.trade_id = trade_id_base  # id of the last trade
        self.global_halt = False
        self._orders: list[Order] = []  # every order ever accepted; order id n is at index n - 1
        self._client_orders: dict[str, dict[str, Order]] = {}  # account -> client order id -> order

    @property
    def last_was_duplicate(self) -> bool:
        return bool(self.last_flags & FLAG_DUPLICATE)

    @property
    def last_was_replace(self) -> bool:
        return bool(self.last_flags & FLAG_REPLACED)

    def _remember_client_order(self, order: Order) -> None:
        account_orders = self._client_orders.get(order.account)
        if account_orders is None:
            self._client_orders[order.account] = {order.client_order_id: order}
        else:
            account_orders[order.client_order_id] = order

    # ---- queries -------------------------------------------------------------------------------

    def top_of_book(self, symbol: str) -> tuple[int, int, int, int]:
        """(bid price, bid quantity, ask price, ask quantity); zeros for an empty side."""
        book = self._books[symbol]
        bid_px = bid_qty = ask_px = ask_qty = 0
        if book.bid_keys:
            bid_px = book.bid_keys[-1]
            bid_qty = sum(o.leaves for o in book.bid_levels[bid_px])
        if book.ask_keys:
            ask_px = -book.ask_keys[-1]
            ask_qty = sum(o.leaves for o in book.ask_levels[-ask_px])
        return bid_px, bid_qty, ask_px, ask_qty

    def depth(self, symbol: str, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``levels`` levels of each side as (price, total quantity), best first."""
        book = self._books[symbol]
        bids = [(px, sum(o.leaves for o in q)) for px, q in book.side_levels(BUY)[:levels]]
        asks = [(px, sum(o.leaves for o in q)) for px, q in book.side_levels(SELL)[:levels]]
        return bids, asks

    def order_status(self, order_id: int) -> OrderView | None:
        if 0 < order_id <= len(self._orders):
            return order_view(self._orders[order_id - 1])
        return None

    def find_client_order(self, account: str, client_order_id: str) -> int | None:
        order = self._client_orders.get(account, {}).get(client_order_id)
        return None if order is None or not client_order_id else order.order_id

    # ---- state ---------------------------------------------------------------------------------

    def book_checksums(self) -> dict[str, int]:
        return {
            symbol: book_checksum(
                symbol, book.halted, book.last_price, [record(order) for order in book.resting_orders()]
            )
            for symbol, book in sorted(self._books.items())
        }

    def checksum(self) -> int:
        """u64 over every book's resting orders and trading state plus the engine's counters."""
        return engine_checksum(
            self.seq, len(self._orders), self.trade_id, self.global_halt, self.book_checksums()
        )

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole state; ``restore`` is its exact inverse."""
        books = [
            BookRecord(
                symbol,
                book.halted,
                book.last_price,
                [order.order_id for _, queue in book.side_levels(BUY) for order in queue],
                [order.order_id for _, queue in book.side_levels(SELL) for order in queue],
            )
            for symbol, book in self._books.items()
        ]
        state = EngineState(
            list(self.instruments.values()),
            self.seq,
            self.trade_id,
            self.global_halt,
            books,
            [record(order) for order in self._orders],
            self.checksum(),
        )
        return encode_snapshot(state)

    def load_state(self, state: EngineState) -> None:
        """Take the state of a decoded snapshot (on a fresh engine); ValueError if it is inconsistent."""
        self.seq = state.seq
        self.trade_id = state.trade_id
        self.global_halt = state.global_halt
        for expected_id, fields in enumerate(state.orders, 1):
            if fields.order_id != expected_id or fields.symbol not in self._books:
                raise ValueError(f"snapshot order {fields.order_id} is out of place")
            order = Order(*fields[:10])
            order.leaves, order.filled, order.cancelled = fields.leaves, fields.filled, fields.cancelled
            self._orders.append(order)
            if order.client_order_id:
                self._remember_client_order(order)
        listed: set[int] = set()
        for book_record in state.books:
            book = self._books.get(book_record.symbol)
            if book is None:
                raise ValueError(f"snapshot book {book_record.symbol!r} is not an instrument")
            book.halted = book_record.halted
            book.trading = not (book.halted or self.global_halt)
            book.set_last_price(book_record.last_price)
            for side, order_ids in ((BUY, book_record.bids), (SELL, book_record.asks)):
                for order_id in order_ids:
                    if not 0 < order_id <= len(self._orders) or order_id in listed:
                        raise ValueError(f"snapshot book {book.symbol} lists order {order_id} wrongly")
                    resting = self._orders[order_id - 1]
                    if resting.leaves <= 0 or resting.side != side or resting.symbol != book.symbol:
                        raise ValueError(f"snapshot order {order_id} cannot rest in {book.symbol}")
                    listed.add(order_id)
                    rest(book, resting)
        if len(listed) != sum(1 for order in self._orders if order.leaves > 0):
            raise ValueError("snapshot leaves live orders out of the books")
        if self.checksum() != state.checksum:
            raise ValueError("snapshot state does not match its checksum")
