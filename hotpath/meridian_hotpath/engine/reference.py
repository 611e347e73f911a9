"""ReferenceEngine: a slow, obviously-correct model of the matching rules, for tests only.

Every order lives in one dict; a book is whatever orders have leaves left, sorted by (price, time)
each time it is needed. No levels, no keys, no caches: if it and the native engine
(``native.MatchingEngine``) ever disagree, this one is the easier to believe.

The rules (what ``process`` answers for each request, in order):


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
* A cancel or replace naming an order that is not live (finished, or never handed out) creates
  nothing: a finished order is forgotten, so the answer is a ``Reject`` with no client order id,
  UNKNOWN_ORDER for a cancel and for an id never handed out, REPLACE_NOT_ALLOWED for a replace of a
  finished order. A live order named with another symbol is UNKNOWN_ORDER, by another account
  NOT_ORDER_OWNER.
* Admin: HALT/RESUME a symbol, or with symbol "" the whole engine (RESUME "" also lifts every
  symbol's own halt); END_OF_DAY cancels DAY orders (a ``CancelAck`` each, by symbol then order
  id) then answers ``AdminAck``. An engine-wide END_OF_DAY (symbol "") also ends the trading day
  for duplicate detection: (account, client order id) pairs are remembered for the day, and from
  then on only the live orders' pairs are.

Checks on a new order, in order: duplicate, UNKNOWN_SYMBOL, INVALID_ORDER (side, type, time in
force or flags out of range), TRADING_HALTED, INVALID_QUANTITY, LOT_SIZE, then for limits
INVALID_PRICE, TICK_SIZE, PRICE_BAND, then post-only rules (INVALID_ORDER on a market, IOC or FOK
order; POST_ONLY_WOULD_CROSS).

Stop orders (``NewStopOrder``: a stop-market order names MARKET, a stop-limit order LIMIT and its
limit price, both a ``stop_price``):

* Checks, in order: those of a new order (a stop-market order's price is ignored, as a market
  order's is), except that post-only is INVALID_ORDER on any stop order; then the stop price:
  INVALID_PRICE (not positive), TICK_SIZE, PRICE_BAND (around the last trade price, as a limit).
* Accepted, the order waits (status PENDING_TRIGGER, ``leaves == quantity``, not in the book):
  the answer is its ``Ack``. A buy stop is triggered by a trade of its symbol at or above its stop
  price, a sell stop by one at or below it. A stop whose condition the symbol's last trade price
  already meets when it is accepted is triggered at once (no trade yet: it waits for the first).
  So waiting buy stops are always above the last trade price and waiting sell stops below it.
* Triggering: after each step that trades (an incoming order's matching, a replace's, a fired
  stop's), the waiting stops that the step's last trade price meets are triggered, in order: buy
  stops by stop price ascending, sell stops by stop price descending, then by order id (the
  trades of one step move the price one way only, so this is the order in which the step's
  trades reached them). Triggered stops fire one after another, in the order they were triggered,
  each after the previous one has finished matching, and the trades of each may trigger more
  (appended behind them): the whole cascade belongs to the request whose trade started it, under
  its seq, and nothing is left triggered between requests.
* Firing: an ``Ack`` of the stop order (status NEW, the order as a new order now) inside the
  triggering request's answer, then its fills and its cancel as for a new market or limit order
  (FOK, IOC, self-trade prevention, NO_LIQUIDITY for a stop-market order), time priority from the
  moment it fires. So any ``Ack`` after the first frame of an answer is a stop order firing
  (the request's own order, when a new stop is triggered at once, or another one).
* A waiting stop can be cancelled (CancelAck USER, also while halted); a replace of a waiting stop
  is REPLACE_NOT_ALLOWED (cancel it and send a new one; once fired it is an ordinary order).
  END_OF_DAY cancels waiting DAY stops with the resting DAY orders, by order id. A halt stops
  trading, so it triggers nothing; waiting stops stay. A duplicate of a waiting stop is answered
  with its Ack (PENDING_TRIGGER).
* Checksums and snapshots hold the waiting stops of each book, in trigger order (buy stops, then
  sell stops), after its resting orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meridian.domain import (
    CancelReason,
    Instrument,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    ORDER_FLAG_STP_MASK,
    ORDER_FLAG_STP_SHIFT,
    Ack,
    Admin,
    AdminAck,
    AdminAction,
    Cancel,
    CancelAck,
    Fill,
    Flag,
    Message,
    NewOrder,
    NewStopOrder,
    Reject,
    Replace,
)
from meridian_hotpath.engine.state import OrderRecord, OrderView, book_checksum, engine_checksum


@dataclass
class RefOrder:
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    flags: int
    price: int
    quantity: int
    leaves: int
    filled: int = 0
    cancelled: int = 0
    arrival: int = 0  # time priority: larger is later
    stop_price: int = 0  # a stop order's trigger price (0: not a stop order)
    waiting: bool = False  # a stop order that has not fired yet (never in the book)
    triggered: bool = False  # a waiting stop order in line to fire

    def status(self) -> int:
        if self.waiting and self.leaves > 0:
            return OrderStatus.PENDING_TRIGGER
        if self.leaves > 0:
            return OrderStatus.PARTIALLY_FILLED if self.filled else OrderStatus.NEW
        return OrderStatus.CANCELLED if self.cancelled else OrderStatus.FILLED

    def record(self) -> OrderRecord:
        return OrderRecord(
            self.order_id, self.client_order_id, self.account, self.symbol, self.side, self.order_type,
            self.time_in_force, self.flags, self.price, self.quantity, self.leaves, self.filled,
            self.cancelled,
        )  # fmt: skip


class ReferenceEngine:
    def __init__(self, instruments: Iterable[Instrument], trade_id_base: int = 0) -> None:
        self.instruments = {instrument.symbol: instrument for instrument in instruments}
        self.seq = 0
        self.last_flags = 0
        self.orders: dict[int, RefOrder] = {}
        # (account, client order id) -> order id, for duplicate detection over the trading day:
        # an engine-wide END_OF_DAY forgets the finished orders' ids (live orders keep theirs).
        self.day_ids: dict[tuple[str, str], int] = {}
        self.trade_id = trade_id_base  # the first trade is trade_id_base + 1
        self.clock = 0
        self.global_halt = False
        self.halted: set[str] = set()
        self.last_price: dict[str, int] = dict.fromkeys(self.instruments, 0)

    # ---- the book, recomputed -----------------------------------------------------------------

    def resting(self, symbol: str, side: int) -> list[RefOrder]:
        """Resting orders of one side, best first: by price (high bids, low asks), then arrival."""
        live = [
            o
            for o in self.orders.values()
            if o.symbol == symbol and o.side == side and o.leaves > 0 and not o.waiting
        ]
        if side == Side.BUY:
            return sorted(live, key=lambda o: (-o.price, o.arrival))
        return sorted(live, key=lambda o: (o.price, o.arrival))

    def crosses(self, side: int, limit: int | None, resting_price: int) -> bool:
        if limit is None:  # market
            return True
        return resting_price <= limit if side == Side.BUY else resting_price >= limit

    def rest(self, order: RefOrder) -> None:
        self.clock += 1
        order.arrival = self.clock

    def trading(self, symbol: str) -> bool:
        return not self.global_halt and symbol not in self.halted

    # ---- requests ----------------------------------------------------------------------------

    def waiting(self, symbol: str) -> list[RefOrder]:
        """The waiting stop orders of ``symbol`` in trigger order: buy stops, then sell stops."""
        waiting = [o for o in self.orders.values() if o.symbol == symbol and o.waiting and o.leaves > 0]
        buys = sorted((o for o in waiting if o.side == Side.BUY), key=lambda o: (o.stop_price, o.order_id))
        sells = sorted((o for o in waiting if o.side == Side.SELL), key=lambda o: (-o.stop_price, o.order_id))
        return buys + sells

    def triggered(self, symbol: str) -> list[RefOrder]:
        """The waiting stops the last trade price meets, in trigger order, marked triggered."""
        last = self.last_price[symbol]
        if not last:
            return []
        hit = [
            o
            for o in self.waiting(symbol)
            if not o.triggered and (o.stop_price <= last if o.side == Side.BUY else o.stop_price >= last)
        ]
        for order in hit:
            order.triggered = True  # it waits (out of the book) until it fires
        return hit

    def run_stops(self, request_id: int, symbol: str, out: list[Message]) -> None:
        """Fire the stops triggered now, and those their trades trigger, one after another."""
        queue = self.triggered(symbol)
        while queue:
            order = queue.pop(0)
            order.waiting = False
            trades_before = self.trade_id
            out.append(self.ack(request_id, order))
            self.match(request_id, order, out)
            if self.trade_id != trades_before:
                queue += self.triggered(symbol)

    def process(self, request: NewOrder | NewStopOrder | Cancel | Replace | Admin) -> list[Message]:
        self.seq += 1
        self.last_flags = 0
        if isinstance(request, NewOrder):
            return self.new_order(request)
        if isinstance(request, NewStopOrder):
            return self.new_stop_order(request)
        if isinstance(request, Cancel):
            return self.cancel(request)
        if isinstance(request, Replace):
            return self.replace(request)
        return self.admin(request)

    def reject(self, request_id: int, order_id: int, coid: str, symbol: str, reason: int) -> list[Message]:
        return [Reject(request_id, self.seq, order_id, coid, symbol, reason)]

    def ack(self, request_id: int, order: RefOrder) -> Ack:
        return Ack(
            request_id, self.seq, order.order_id, order.client_order_id, order.account, order.symbol,
            order.side, order.status(), order.quantity, order.leaves, order.filled, order.price,
        )  # fmt: skip

    def cancel_ack(self, request_id: int, order: RefOrder, reason: int) -> CancelAck:
        quantity = order.leaves
        order.cancelled += quantity
        order.leaves = 0
        return CancelAck(
            request_id, self.seq, order.order_id, order.client_order_id, order.account, order.symbol,
            reason, quantity,
        )  # fmt: skip

    def new_order_problem(self, r: NewOrder | NewStopOrder) -> int | None:
        instrument = self.instruments[r.symbol]
        stop = isinstance(r, NewStopOrder)
        if (
            r.side not in (Side.BUY, Side.SELL)
            or r.order_type not in (OrderType.LIMIT, OrderType.MARKET)
            or r.time_in_force not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY)
            or r.order_flags & ~(ORDER_FLAG_POST_ONLY | ORDER_FLAG_STP_MASK)
            or (stop and r.order_flags & ORDER_FLAG_POST_ONLY)
        ):
            return RejectReason.INVALID_ORDER
        if not self.trading(r.symbol):
            return RejectReason.TRADING_HALTED
        if r.quantity <= 0 or r.quantity > instrument.max_order_quantity:
            return RejectReason.INVALID_QUANTITY
        if r.quantity % instrument.lot_size != 0:
            return RejectReason.LOT_SIZE
        post_only = bool(r.order_flags & ORDER_FLAG_POST_ONLY)
        if r.order_type == OrderType.MARKET:
            if post_only:
                return RejectReason.INVALID_ORDER
            return self.price_problem(r.symbol, r.stop_price) if isinstance(r, NewStopOrder) else None
        problem = self.price_problem(r.symbol, r.price)
        if problem is None and isinstance(r, NewStopOrder):
            problem = self.price_problem(r.symbol, r.stop_price)
        if problem is not None:
            return problem
        if post_only and r.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return RejectReason.INVALID_ORDER
        if post_only and self.would_cross(r.symbol, r.side, r.price):
            return RejectReason.POST_ONLY_WOULD_CROSS
        return None

    def price_problem(self, symbol: str, price: int) -> int | None:
        """INVALID_PRICE, TICK_SIZE or PRICE_BAND for a limit or stop price, else None."""
        instrument = self.instruments[symbol]
        if price <= 0:
            return RejectReason.INVALID_PRICE
        if price % instrument.tick_size != 0:
            return RejectReason.TICK_SIZE
        low, high = instrument.band(self.last_price[symbol] or instrument.reference_price)
        if not low <= price <= high:
            return RejectReason.PRICE_BAND
        return None

    def would_cross(self, symbol: str, side: int, price: int) -> bool:
        opposite = self.resting(symbol, Side.SELL if side == Side.BUY else Side.BUY)
        return bool(opposite) and self.crosses(side, price, opposite[0].price)

    def new_order(self, r: NewOrder) -> list[Message]:
        key = (r.account, r.client_order_id)
        if r.client_order_id and key in self.day_ids:
            self.last_flags = Flag.DUPLICATE
            return [self.ack(r.request_id, self.orders[self.day_ids[key]])]
        if r.symbol not in self.instruments:
            return self.reject(r.request_id, 0, r.client_order_id, r.symbol, RejectReason.UNKNOWN_SYMBOL)
        problem = self.new_order_problem(r)
        if problem is not None:
            return self.reject(r.request_id, 0, r.client_order_id, r.symbol, problem)
        market = r.order_type == OrderType.MARKET
        order = RefOrder(
            len(self.orders) + 1, r.client_order_id, r.account, r.symbol, r.side, r.order_type,
            r.time_in_force, r.order_flags, 0 if market else r.price, r.quantity, r.quantity,
        )  # fmt: skip
        self.orders[order.order_id] = order
        if r.client_order_id:
            self.day_ids[key] = order.order_id
        out: list[Message] = [self.ack(r.request_id, order)]
        self.match(r.request_id, order, out)
        self.run_stops(r.request_id, r.symbol, out)
        return out

    def new_stop_order(self, r: NewStopOrder) -> list[Message]:
        key = (r.account, r.client_order_id)
        if r.client_order_id and key in self.day_ids:
            self.last_flags = Flag.DUPLICATE
            return [self.ack(r.request_id, self.orders[self.day_ids[key]])]
        if r.symbol not in self.instruments:
            return self.reject(r.request_id, 0, r.client_order_id, r.symbol, RejectReason.UNKNOWN_SYMBOL)
        problem = self.new_order_problem(r)
        if problem is not None:
            return self.reject(r.request_id, 0, r.client_order_id, r.symbol, problem)
        market = r.order_type == OrderType.MARKET
        order = RefOrder(
            len(self.orders) + 1, r.client_order_id, r.account, r.symbol, r.side, r.order_type,
            r.time_in_force, r.order_flags, 0 if market else r.price, r.quantity, r.quantity,
            stop_price=r.stop_price, waiting=True,
        )  # fmt: skip
        self.orders[order.order_id] = order
        if r.client_order_id:
            self.day_ids[key] = order.order_id
        out: list[Message] = [self.ack(r.request_id, order)]
        self.run_stops(r.request_id, r.symbol, out)
        return out

    def fillable(self, order: RefOrder, stp: int) -> bool:
        """FOK: would matching fill the whole order? Walks the book as ``match`` would."""
        available = 0
        limit = None if order.order_type == OrderType.MARKET else order.price
        for resting in self.resting(order.symbol, Side.SELL if order.side == Side.BUY else Side.BUY):
            if not self.crosses(order.side, limit, resting.price):
                break
            if resting.account == order.account and stp != SelfTradePrevention.ALLOW:
                if stp == SelfTradePrevention.CANCEL_OLDEST:
                    continue
                break
            available += resting.leaves
        return available >= order.leaves

    def match(self, request_id: int, order: RefOrder, out: list[Message]) -> None:
        stp = (order.flags & ORDER_FLAG_STP_MASK) >> ORDER_FLAG_STP_SHIFT
        if order.time_in_force == TimeInForce.FOK and not self.fillable(order, stp):
            out.append(self.cancel_ack(request_id, order, CancelReason.FOK_UNFILLED))
            return
        limit = None if order.order_type == OrderType.MARKET else order.price
        stopped_by_self_trade = False
        while order.leaves > 0 and not stopped_by_self_trade:
            opposite = self.resting(order.symbol, Side.SELL if order.side == Side.BUY else Side.BUY)
            if not opposite or not self.crosses(order.side, limit, opposite[0].price):
                break
            resting = opposite[0]
            if resting.account == order.account and stp != SelfTradePrevention.ALLOW:
                if stp in (SelfTradePrevention.CANCEL_OLDEST, SelfTradePrevention.CANCEL_BOTH):
                    out.append(self.cancel_ack(request_id, resting, CancelReason.SELF_TRADE))
                if stp in (SelfTradePrevention.CANCEL_NEWEST, SelfTradePrevention.CANCEL_BOTH):
                    stopped_by_self_trade = True
                continue
            quantity = min(order.leaves, resting.leaves)
            for o in (order, resting):
                o.leaves -= quantity
                o.filled += quantity
            self.trade_id += 1
            self.last_price[order.symbol] = resting.price
            buy, sell = (order, resting) if order.side == Side.BUY else (resting, order)
            fill = Fill(
                request_id, self.seq, self.trade_id, order.symbol, resting.price, quantity, order.side,
                buy.order_id, sell.order_id, buy.account, sell.account, buy.client_order_id,
                sell.client_order_id, buy.leaves, sell.leaves,
            )  # fmt: skip
            out.append(fill)
        if order.leaves == 0:
            return
        if stopped_by_self_trade:
            out.append(self.cancel_ack(request_id, order, CancelReason.SELF_TRADE))
        elif order.order_type == OrderType.MARKET:
            out.append(self.cancel_ack(request_id, order, CancelReason.NO_LIQUIDITY))
        elif order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            out.append(self.cancel_ack(request_id, order, CancelReason.IOC_REMAINDER))
        else:
            self.rest(order)

    def target(self, r: Cancel | Replace, not_live: int) -> RefOrder | list[Message]:
        """The live order a cancel or replace names, or the Reject that answers the request.

        A finished order is forgotten (the engine keeps live orders only): naming one is refused with
        ``not_live`` (UNKNOWN_ORDER for a cancel, REPLACE_NOT_ALLOWED for a replace) whoever asks,
        and an id never handed out with UNKNOWN_ORDER; neither carries a client order id.
        """
        order = self.orders.get(r.order_id)
        if order is None or order.leaves == 0:
            reason = not_live if order is not None else RejectReason.UNKNOWN_ORDER
            return self.reject(r.request_id, r.order_id, "", r.symbol, reason)
        if r.symbol and r.symbol != order.symbol:
            return self.reject(r.request_id, r.order_id, "", r.symbol, RejectReason.UNKNOWN_ORDER)
        if order.account != r.account:
            return self.reject(r.request_id, r.order_id, "", r.symbol, RejectReason.NOT_ORDER_OWNER)
        return order

    def cancel(self, r: Cancel) -> list[Message]:
        order = self.target(r, RejectReason.UNKNOWN_ORDER)
        if isinstance(order, list):
            return order
        return [self.cancel_ack(r.request_id, order, CancelReason.USER)]

    def replace(self, r: Replace) -> list[Message]:
        order = self.target(r, RejectReason.REPLACE_NOT_ALLOWED)
        if isinstance(order, list):
            return order
        instrument = self.instruments[order.symbol]
        low, high = instrument.band(self.last_price[order.symbol] or instrument.reference_price)
        problem: int | None = None
        if order.waiting:
            problem = RejectReason.REPLACE_NOT_ALLOWED
        elif not self.trading(order.symbol):
            problem = RejectReason.TRADING_HALTED
        elif r.quantity <= 0 or r.quantity > instrument.max_order_quantity:
            problem = RejectReason.INVALID_QUANTITY
        elif r.quantity % instrument.lot_size:
            problem = RejectReason.LOT_SIZE
        elif r.price <= 0:
            problem = RejectReason.INVALID_PRICE
        elif r.price % instrument.tick_size:
            problem = RejectReason.TICK_SIZE
        elif r.price != order.price and not low <= r.price <= high:
            problem = RejectReason.PRICE_BAND
        elif order.flags & ORDER_FLAG_POST_ONLY and self.would_cross(order.symbol, order.side, r.price):
            problem = RejectReason.POST_ONLY_WOULD_CROSS
        if problem is not None:
            return self.reject(r.request_id, r.order_id, order.client_order_id, r.symbol, problem)
        self.last_flags = Flag.REPLACED
        keeps_priority = r.price == order.price and r.quantity <= order.leaves
        order.quantity = order.filled + order.cancelled + r.quantity
        order.leaves = r.quantity
        order.price = r.price
        out: list[Message] = [self.ack(r.request_id, order)]
        if not keeps_priority:
            self.match(r.request_id, order, out)
            self.run_stops(r.request_id, order.symbol, out)
        return out

    def admin(self, r: Admin) -> list[Message]:
        if r.symbol and r.symbol not in self.instruments:
            return self.reject(r.request_id, 0, "", r.symbol, RejectReason.UNKNOWN_SYMBOL)
        symbols = [r.symbol] if r.symbol else sorted(self.instruments)
        out: list[Message] = []
        if r.action == AdminAction.HALT:
            if r.symbol:
                self.halted.add(r.symbol)
            else:
                self.global_halt = True
        elif r.action == AdminAction.RESUME:
            if r.symbol:
                self.halted.discard(r.symbol)
            else:
                self.global_halt = False
                self.halted.clear()
        elif r.action == AdminAction.END_OF_DAY:
            for symbol in symbols:
                for order in sorted(self.orders.values(), key=lambda o: o.order_id):
                    if order.symbol == symbol and order.leaves > 0 and order.time_in_force == TimeInForce.DAY:
                        out.append(self.cancel_ack(r.request_id, order, CancelReason.END_OF_DAY))
            if not r.symbol:  # the trading day is over: only live orders keep their client order ids
                self.day_ids = {key: oid for key, oid in self.day_ids.items() if self.orders[oid].leaves > 0}
        else:
            return self.reject(r.request_id, 0, "", r.symbol, RejectReason.INVALID_ORDER)
        out.append(AdminAck(r.request_id, self.seq, r.symbol, r.action))
        return out

    # ---- queries -----------------------------------------------------------------------------

    def top_of_book(self, symbol: str) -> tuple[int, int, int, int]:
        bids, asks = self.depth(symbol, 1)
        bid_px, bid_qty = bids[0] if bids else (0, 0)
        ask_px, ask_qty = asks[0] if asks else (0, 0)
        return bid_px, bid_qty, ask_px, ask_qty

    def depth(self, symbol: str, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        sides = []
        for side in (Side.BUY, Side.SELL):
            totals: dict[int, int] = {}
            for order in self.resting(symbol, side):
                totals[order.price] = totals.get(order.price, 0) + order.leaves
            sides.append(list(totals.items())[:levels])
        return sides[0], sides[1]

    def order_status(self, order_id: int) -> OrderView | None:
        o = self.orders.get(order_id)
        if o is None:
            return None
        return self.view(o)

    def view(self, o: RefOrder) -> OrderView:
        return OrderView(*o.record(), o.status(), o.stop_price if o.waiting and o.leaves else 0)

    def symbol_halted(self, symbol: str) -> bool:
        """Whether ``symbol`` is halted, by its own halt or the whole node's."""
        if symbol not in self.instruments:
            raise KeyError(symbol)
        return not self.trading(symbol)

    def waiting_stops(self, symbol: str) -> list[OrderView]:
        """The stop orders of ``symbol`` not triggered yet, in trigger order."""
        return [self.view(o) for o in self.waiting(symbol)]

    def book_checksums(self) -> dict[str, int]:
        return {
            symbol: book_checksum(
                symbol,
                symbol in self.halted,
                self.last_price[symbol],
                [o.record() for side in (Side.BUY, Side.SELL) for o in self.resting(symbol, side)],
                [(*o.record(), o.stop_price) for o in self.waiting(symbol)],
            )
            for symbol in sorted(self.instruments)
        }

    def checksum(self) -> int:
        books = self.book_checksums()
        return engine_checksum(self.seq, len(self.orders), self.trade_id, self.global_halt, books)
