"""The matching engine: price-time priority books for many instruments, with no I/O, clock or randomness.

Answer conventions (what ``process`` returns for each request, in order):

* New order: an ``Ack`` with status NEW and ``leaves == quantity``, then one ``Fill`` per trade in
  match order, then at most one ``CancelAck`` for the order's remainder (IOC_REMAINDER, NO_LIQUIDITY
  for a market order, FOK_UNFILLED with no fill, SELF_TRADE). A resting order that self-trade
  prevention removes gets its own ``CancelAck`` (SELF_TRADE) at the point of the match sequence where
  it was removed. An invalid order gets one ``Reject`` and no order id.
* A new order whose (account, client_order_id) was seen before creates nothing: the answer is an
  ``Ack`` describing the existing order now and ``last_flags`` is ``Flag.DUPLICATE``.
* Replace: ``quantity`` is the new leaves quantity, ``price`` the new limit price. The answer is an
  ``Ack`` with the order after the change (``quantity`` = filled + new leaves), then fills and
  cancels as for a new order; ``last_flags`` is ``Flag.REPLACED``. Reducing the leaves at the same
  price keeps time priority; anything else moves the order to the back of its (new) level.
* Cancel: a ``CancelAck`` (USER). Cancels are accepted while trading is halted.
* Admin: HALT/RESUME a symbol, or with symbol "" the whole engine (RESUME "" also lifts every
  symbol's own halt); END_OF_DAY cancels DAY orders (a ``CancelAck`` each, by symbol then order
  id) then answers ``AdminAck``.

Checks on a new order, in order: duplicate, UNKNOWN_SYMBOL, INVALID_ORDER (side, type, time in
force or flags out of range), TRADING_HALTED, INVALID_QUANTITY, LOT_SIZE, then for limits
INVALID_PRICE, TICK_SIZE, PRICE_BAND, then post-only rules (INVALID_ORDER on a market, IOC or FOK
order; POST_ONLY_WOULD_CROSS).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Final

from meridian.domain import MAX_PRICE
from meridian.protocol import (
    Ack,
    Admin,
    AdminAck,
    Cancel,
    CancelAck,
    Fill,
    Message,
    NewOrder,
    Reject,
    Replace,
)
from meridian_hotpath.engine.base import EngineBase
from meridian_hotpath.engine.book import (
    BUY,
    DAY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STATUS_NEW,
    Book,
    Order,
    fok_fillable,
    rest,
    unlink,
)
from meridian_hotpath.engine.codes import (
    ADMIN_END_OF_DAY,
    ADMIN_HALT,
    ADMIN_RESUME,
    CANCEL_END_OF_DAY,
    CANCEL_FOK_UNFILLED,
    CANCEL_IOC_REMAINDER,
    CANCEL_NO_LIQUIDITY,
    CANCEL_SELF_TRADE,
    CANCEL_USER,
    FLAG_DUPLICATE,
    FLAG_REPLACED,
    INVALID_ORDER,
    INVALID_PRICE,
    INVALID_QUANTITY,
    KNOWN_ORDER_FLAGS,
    LOT_SIZE,
    NOT_ORDER_OWNER,
    NOT_STP_FLAGS,
    POST_ONLY,
    POST_ONLY_WOULD_CROSS,
    PRICE_BAND,
    REPLACE_NOT_ALLOWED,
    STP_ALLOW,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_MASK,
    STP_SHIFT,
    TICK_SIZE,
    TRADING_HALTED,
    UNKNOWN_ORDER,
    UNKNOWN_SYMBOL,
)
from meridian_hotpath.engine.messages import ack_message, cancel_message, reject_message
from meridian_hotpath.engine.state import decode_snapshot

ANY_PRICE_KEY: Final = -MAX_PRICE - 1  # every key is >= this: a market order crosses every level

# Hot-path names as Final module constants: mypyc keeps these in C statics instead of looking them
# up in the module dict on every use. ``_new`` builds a message NamedTuple without running its
# Python-level ``__new__``.
_new: Final = tuple.__new__
_NEW_ORDER: Final = NewOrder
_CANCEL: Final = Cancel
_REPLACE: Final = Replace
_ACK: Final = Ack
_FILL: Final = Fill
_CANCEL_ACK: Final = CancelAck
_deque: Final = deque
_insort: Final = insort
_bisect_left: Final = bisect_left

Request = NewOrder | Cancel | Replace | Admin


def _order_id(order: Order) -> int:
    return order.order_id


class MatchingEngine(EngineBase):
    """Single-writer matching engine; see the module docstring for what each request answers."""

    # ---- requests ------------------------------------------------------------------------------

    def process(self, request: Request) -> list[Message]:
        """Apply one request and return its answer (never empty, every message stamped ``seq``)."""
        seq = self.seq + 1
        self.seq = seq
        self.last_flags = 0
        if type(request) is _NEW_ORDER:
            return self._new_order(request, seq)
        if type(request) is _CANCEL:
            return self._cancel(request, seq)
        if type(request) is _REPLACE:
            return self._replace(request, seq)
        return self._admin(request, seq)

    def _new_order(self, request: NewOrder, seq: int) -> list[Message]:
        rid, coid, account, symbol, side, order_type, tif, flags, quantity, price = request
        account_orders = self._client_orders.get(account)
        if coid and account_orders is not None:
            existing = account_orders.get(coid)
            if existing is not None:
                self.last_flags = FLAG_DUPLICATE
                return [ack_message(rid, seq, existing)]
        book = self._books.get(symbol)
        if book is None:
            return [reject_message(rid, seq, 0, coid, symbol, UNKNOWN_SYMBOL)]
        if side == BUY:
            opposite_keys = book.ask_keys
            limit_key = -price
        else:
            opposite_keys = book.bid_keys
            limit_key = price
        # One test that every valid plain limit order passes (no post-only flag: only STP bits; the
        # band's low end is >= 1, so the price is positive); anything else takes the checks in order.
        if not (
            order_type == LIMIT
            and GTC <= tif <= DAY
            and not flags & NOT_STP_FLAGS
            and side in (BUY, SELL)
            and book.trading
            and 0 < quantity <= book.max_quantity
            and book.band_low <= price <= book.band_high
            and not quantity % book.lot_size
            and not price % book.tick_size
        ):
            reason = 0
            if (
                (side != BUY and side != SELL)
                or (order_type != LIMIT and order_type != MARKET)
                or tif < GTC
                or tif > DAY
                or flags & ~KNOWN_ORDER_FLAGS
            ):
                reason = INVALID_ORDER
            elif not book.trading:
                reason = TRADING_HALTED
            elif quantity <= 0 or quantity > book.max_quantity:
                reason = INVALID_QUANTITY
            elif quantity % book.lot_size:
                reason = LOT_SIZE
            elif order_type == MARKET:
                price = 0
                limit_key = ANY_PRICE_KEY
                if flags & POST_ONLY:
                    reason = INVALID_ORDER
            elif price <= 0:
                reason = INVALID_PRICE
            elif price % book.tick_size:
                reason = TICK_SIZE
            elif price < book.band_low or price > book.band_high:
                reason = PRICE_BAND
            elif flags & POST_ONLY:
                if tif in (IOC, FOK):
                    reason = INVALID_ORDER
                elif opposite_keys and opposite_keys[-1] >= limit_key:
                    reason = POST_ONLY_WOULD_CROSS
            if reason:
                return [reject_message(rid, seq, 0, coid, symbol, reason)]

        orders = self._orders
        order_id = len(orders) + 1
        order = Order(order_id, coid, account, symbol, side, order_type, tif, flags, price, quantity)
        orders.append(order)
        if not coid:
            pass
        elif account_orders is None:
            self._client_orders[account] = {coid: order}
        else:
            account_orders[coid] = order
        ack = (rid, seq, order_id, coid, account, symbol, side, STATUS_NEW, quantity, quantity, 0, price)
        out: list[Message] = [_new(_ACK, ack)]
        if (opposite_keys and opposite_keys[-1] >= limit_key) or order_type == MARKET or tif in (IOC, FOK):
            self._execute(book, order, limit_key, rid, seq, out)
            return out
        # The common case, inline: a limit order that does not cross joins the back of its level.
        if side == BUY:
            levels, keys, key = book.bid_levels, book.bid_keys, price
        else:
            levels, keys, key = book.ask_levels, book.ask_keys, -price
        queue = levels.get(key)
        if queue is None:
            levels[key] = _deque((order,))
            _insort(keys, key)
        else:
            queue.append(order)
        return out

    def _execute(
        self, book: Book, order: Order, limit_key: int, rid: int, seq: int, out: list[Message]
    ) -> None:
        """Match an incoming (or repriced) order, then rest or cancel what is left of it."""
        side = order.side
        if side == BUY:
            levels, keys, sign = book.ask_levels, book.ask_keys, -1
        else:
            levels, keys, sign = book.bid_levels, book.bid_keys, 1
        account = order.account
        stp = (order.flags & STP_MASK) >> STP_SHIFT
        remaining = order.leaves
        if order.time_in_force == FOK and not fok_fillable(levels, keys, limit_key, remaining, account, stp):
            order.leaves = 0
            order.cancelled += remaining
            out.append(cancel_message(rid, seq, order, CANCEL_FOK_UNFILLED, remaining))
            return
        order_id = order.order_id
        coid = order.client_order_id
        symbol = book.symbol
        trade_id = self.trade_id
        self_trade = False
        last_price = 0
        while keys:
            key = keys[-1]
            if key < limit_key:
                break
            queue = levels[key]
            price = key * sign
            while queue:
                resting = queue[0]
                if stp != STP_ALLOW and resting.account == account:
                    if stp != STP_CANCEL_NEWEST:  # CANCEL_OLDEST or CANCEL_BOTH: the resting order goes
                        queue.popleft()
                        out.append(cancel_message(rid, seq, resting, CANCEL_SELF_TRADE, resting.leaves))
                        resting.cancelled += resting.leaves
                        resting.leaves = 0
                    if stp != STP_CANCEL_OLDEST:  # CANCEL_NEWEST or CANCEL_BOTH: the incoming one stops
                        self_trade = True
                        break
                    continue
                resting_leaves = resting.leaves
                if resting_leaves <= remaining:
                    quantity = resting_leaves
                    queue.popleft()
                else:
                    quantity = remaining
                resting_leaves -= quantity
                resting.leaves = resting_leaves
                resting.filled += quantity
                remaining -= quantity
                trade_id += 1
                last_price = price
                if side == BUY:
                    fill = (
                        rid, seq, trade_id, symbol, price, quantity, BUY, order_id, resting.order_id,
                        account, resting.account, coid, resting.client_order_id, remaining, resting_leaves,
                    )  # fmt: skip
                else:
                    fill = (
                        rid, seq, trade_id, symbol, price, quantity, SELL, resting.order_id, order_id,
                        resting.account, account, resting.client_order_id, coid, resting_leaves, remaining,
                    )  # fmt: skip
                out.append(_new(_FILL, fill))
                if not remaining:
                    break
            if not queue:
                del levels[key]
                keys.pop()
            if not remaining or self_trade:
                break
        if trade_id != self.trade_id:
            order.filled += order.leaves - remaining
            self.trade_id = trade_id
            if last_price != book.last_price:
                book.set_last_price(last_price)
        order.leaves = remaining
        if not remaining:
            return
        if self_trade:
            reason = CANCEL_SELF_TRADE
        elif order.order_type == MARKET:
            reason = CANCEL_NO_LIQUIDITY
        elif order.time_in_force == IOC or order.time_in_force == FOK:
            reason = CANCEL_IOC_REMAINDER
        else:
            rest(book, order)
            return
        order.leaves = 0
        order.cancelled += remaining
        out.append(cancel_message(rid, seq, order, reason, remaining))

    def _owned_order(
        self, rid: int, seq: int, account: str, symbol: str, order_id: int, not_live: int
    ) -> Order | Reject:
        """The live order a cancel or replace names, or the Reject that answers it."""
        orders = self._orders
        if order_id <= 0 or order_id > len(orders):
            return reject_message(rid, seq, order_id, "", symbol, UNKNOWN_ORDER)
        order = orders[order_id - 1]
        if symbol and symbol != order.symbol:
            return reject_message(rid, seq, order_id, "", symbol, UNKNOWN_ORDER)
        if order.account != account:
            return reject_message(rid, seq, order_id, "", symbol, NOT_ORDER_OWNER)
        if order.leaves == 0:
            return reject_message(rid, seq, order_id, order.client_order_id, symbol, not_live)
        return order

    def _cancel(self, request: Cancel, seq: int) -> list[Message]:
        rid, account, symbol, order_id = request
        orders = self._orders
        if 0 < order_id <= len(orders):
            order = orders[order_id - 1]
            quantity = order.leaves
            order_symbol = order.symbol
            if quantity and order.account == account and (not symbol or symbol == order_symbol):
                book = self._books[order_symbol]  # unlink(), inline
                if order.side == BUY:
                    levels, keys, key = book.bid_levels, book.bid_keys, order.price
                else:
                    levels, keys, key = book.ask_levels, book.ask_keys, -order.price
                queue = levels[key]
                if len(queue) == 1:
                    del levels[key]
                    del keys[_bisect_left(keys, key)]
                else:
                    queue.remove(order)
                order.leaves = 0
                order.cancelled += quantity
                ack = (
                    rid,
                    seq,
                    order_id,
                    order.client_order_id,
                    account,
                    order_symbol,
                    CANCEL_USER,
                    quantity,
                )
                return [_new(_CANCEL_ACK, ack)]
        rejected = self._owned_order(rid, seq, account, symbol, order_id, UNKNOWN_ORDER)
        assert isinstance(rejected, Reject)  # every live, owned order took the path above
        return [rejected]

    def _replace(self, request: Replace, seq: int) -> list[Message]:
        rid, account, symbol, order_id, quantity, price = request
        order = self._owned_order(rid, seq, account, symbol, order_id, REPLACE_NOT_ALLOWED)
        if isinstance(order, Reject):
            return [order]
        book = self._books[order.symbol]
        if order.side == BUY:
            opposite_keys, match_key = book.ask_keys, -price
        else:
            opposite_keys, match_key = book.bid_keys, price
        reason = 0
        if not book.trading:
            reason = TRADING_HALTED
        elif quantity <= 0 or quantity > book.max_quantity:
            reason = INVALID_QUANTITY
        elif quantity % book.lot_size:
            reason = LOT_SIZE
        elif price <= 0:
            reason = INVALID_PRICE
        elif price % book.tick_size:
            reason = TICK_SIZE
        elif price != order.price and (price < book.band_low or price > book.band_high):
            reason = PRICE_BAND
        elif order.flags & POST_ONLY and opposite_keys and opposite_keys[-1] >= match_key:
            reason = POST_ONLY_WOULD_CROSS
        if reason:
            return [reject_message(rid, seq, order_id, order.client_order_id, symbol, reason)]
        self.last_flags = FLAG_REPLACED
        keeps_priority = price == order.price and quantity <= order.leaves
        if not keeps_priority:
            unlink(book, order)
        order.quantity += quantity - order.leaves
        order.leaves = quantity
        order.price = price
        out: list[Message] = [ack_message(rid, seq, order)]
        if keeps_priority:
            return out
        if opposite_keys and opposite_keys[-1] >= match_key:
            self._execute(book, order, match_key, rid, seq, out)
        else:
            rest(book, order)
        return out

    def _admin(self, request: object, seq: int) -> list[Message]:
        if type(request) is not Admin:  # not a state-changing request: answered, never raised
            request_id = getattr(request, "request_id", 0)
            return [
                reject_message(request_id if type(request_id) is int else 0, seq, 0, "", "", INVALID_ORDER)
            ]
        rid, symbol, action = request
        if symbol and symbol not in self._books:
            return [reject_message(rid, seq, 0, "", symbol, UNKNOWN_SYMBOL)]
        books = [self._books[symbol]] if symbol else [self._books[s] for s in sorted(self._books)]
        out: list[Message] = []
        if action in (ADMIN_HALT, ADMIN_RESUME):
            halt = action == ADMIN_HALT
            if not symbol:
                self.global_halt = halt
            for book in books:
                if symbol or not halt:
                    book.halted = halt
                book.trading = not (book.halted or self.global_halt)
        elif action == ADMIN_END_OF_DAY:
            for book in books:
                day_orders = [order for order in book.resting_orders() if order.time_in_force == DAY]
                for order in sorted(day_orders, key=_order_id):
                    unlink(book, order)
                    out.append(cancel_message(rid, seq, order, CANCEL_END_OF_DAY, order.leaves))
                    order.cancelled += order.leaves
                    order.leaves = 0
        else:
            return [reject_message(rid, seq, 0, "", symbol, INVALID_ORDER)]
        out.append(AdminAck(rid, seq, symbol, action))
        return out

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        """The engine ``snapshot`` described; ValueError if ``data`` is malformed or inconsistent."""
        state = decode_snapshot(data)
        engine = cls(state.instruments)
        engine.load_state(state)
        return engine
