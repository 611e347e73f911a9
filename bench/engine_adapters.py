"""The engines the engine benchmark compares, and how each is called with the workload's values.

``calls(ops)`` turns the workload into ``(callable, plain values)`` pairs: each engine's own
per-call API where it takes plain values (Meridian's ``submit``/``cancel``, the floor's
``add``/``cancel``), a small adapter where the engine needs objects built (liquibook's SimpleOrder)
or its answer read (lightmatchingengine's trade list). Nothing engine-specific is built before
timing: the benchmark times each engine from the same inputs to its answer.

``recording=True`` makes an adapter keep every trade as ``(maker id, taker id, price, quantity)``
in ``trades``: the benchmark replays the workload once that way (untimed) to compare the engines'
trade sequences, and times separate runs without the recording.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import Any

import liquibook
from lightmatchingengine.lightmatchingengine import LightMatchingEngine

from bench.engine_workload import SYMBOL, NewOp, Op
from bench.floor_engine import BUY, FloorEngine
from meridian.domain import Instrument, OrderType, SelfTradePrevention, TimeInForce
from meridian.protocol import ORDER_FLAG_STP_SHIFT, Fill, decode_stream
from meridian_hotpath.engine import MatchingEngine

Trade = tuple[int, int, int, int]  # maker order id, taker order id, price, quantity
Call = tuple[Callable[..., Any], tuple[Any, ...]]

INSTRUMENT = Instrument(SYMBOL, tick_size=1, lot_size=1, reference_price=10_000, band_bps=2000)
# The other engines have no self-trade prevention, so the workload's accounts may trade together.
STP_ALLOW_FLAGS = int(SelfTradePrevention.ALLOW) << ORDER_FLAG_STP_SHIFT
LIMIT, GTC = int(OrderType.LIMIT), int(TimeInForce.GTC)


def fills_of(answer: bytes) -> list[Trade]:
    trades = []
    for message, _ in decode_stream(answer)[0]:
        if isinstance(message, Fill):
            if message.aggressor_side == 1:
                maker, taker = message.sell_order_id, message.buy_order_id
            else:
                maker, taker = message.buy_order_id, message.sell_order_id
            trades.append((maker, taker, message.price, message.quantity))
    return trades


class MeridianPerCall:
    """The native core's per-call API: plain values in, the encoded answer frames out."""

    def __init__(self, recording: bool = False) -> None:
        self.engine = MatchingEngine([INSTRUMENT], preallocate=True)  # as the node starts its engine
        self.recording = recording
        self.trades: list[Trade] = []

    def calls(self, ops: Sequence[Op]) -> list[Call]:
        submit = self._submit_recorded if self.recording else self.engine.submit
        cancel = self.engine.cancel
        flags = STP_ALLOW_FLAGS
        return [
            (submit, (op.order_id, op.client_order_id, op.account, SYMBOL, op.side, LIMIT, GTC, flags,
                      op.quantity, op.price))
            if isinstance(op, NewOp)
            else (cancel, (op.order_id, op.account, SYMBOL, op.order_id))
            for op in ops
        ]  # fmt: skip

    def _submit_recorded(self, *values: Any) -> bytes:
        answer = self.engine.submit(*values)
        self.trades += fills_of(answer)
        return answer

    def trade_count(self) -> int:
        return int(self.engine.trade_id)


class FloorAdapter:
    def __init__(self, recording: bool = False) -> None:
        self.engine = RecordingFloor() if recording else FloorEngine()
        self.trades: list[Trade] = getattr(self.engine, "trades_made", [])

    def calls(self, ops: Sequence[Op]) -> list[Call]:
        add, cancel = self.engine.add, self.engine.cancel
        return [
            (add, (op.order_id, op.side, op.price, op.quantity))
            if isinstance(op, NewOp)
            else (cancel, (op.order_id,))
            for op in ops
        ]

    def trade_count(self) -> int:
        return self.engine.trades


class RecordingFloor(FloorEngine):
    """The floor's ``add`` with each trade recorded (the verification pass only; the timed runs use
    ``FloorEngine`` itself, and the benchmark checks both made the same number of trades)."""

    def __init__(self) -> None:
        super().__init__()
        self.trades_made: list[Trade] = []

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        if side == BUY:
            levels, heap, sign = self.asks, self.ask_heap, 1
        else:
            levels, heap, sign = self.bids, self.bid_heap, -1
        while quantity and heap:
            level_price = heap[0] * sign
            level = levels.get(level_price)
            if level is None:
                heappop(heap)
                continue
            if (level_price > price) if side == BUY else (level_price < price):
                break
            while level and quantity:
                resting = level[0]
                traded = min(quantity, resting[1])
                resting[1] -= traded
                quantity -= traded
                self.trades += 1
                self.trades_made.append((resting[0], order_id, level_price, traded))
                if not resting[1]:
                    level.popleft()
                    del self.orders[resting[0]]
            if not level:
                del levels[level_price]
                heappop(heap)
        if quantity:
            order = [order_id, quantity, side, price]
            self.orders[order_id] = order
            own = self.bids if side == BUY else self.asks
            level = own.get(price)
            if level is None:
                own[price] = deque((order,))
                heappush(self.bid_heap if side == BUY else self.ask_heap, -price if side == BUY else price)
            else:
                level.append(order)


class LiquibookAdapter:
    """liquibook's plain C++ book (no depth tracking, its cheapest configuration that reports trades):
    a SimpleOrder built per add, fills counted by an order listener, as in liquibook's own examples."""

    def __init__(self, recording: bool = False) -> None:
        adapter = self

        class Listener(liquibook.OrderListener):  # type: ignore[misc]
            def __init__(self) -> None:
                liquibook.OrderListener.__init__(self)
                self.trades = 0

            def on_accept(self, order: Any) -> None:
                pass

            def on_reject(self, order: Any, reason: Any) -> None:
                pass

            def on_fill(self, order: Any, matched_order: Any, quantity: int, price: int) -> None:
                self.trades += 1
                if recording:  # ``order`` is the inbound one, ``matched_order`` the resting one
                    taker = adapter.ids[int(order.order_id_)]
                    maker = adapter.ids[int(matched_order.order_id_)]
                    adapter.trades.append((maker, taker, int(price), int(quantity)))

            def on_cancel(self, order: Any) -> None:
                pass

            def on_cancel_reject(self, order: Any, reason: Any) -> None:
                pass

            def on_replace(self, order: Any, size_delta: int, new_price: int) -> None:
                pass

            def on_replace_reject(self, order: Any, reason: Any) -> None:
                pass

        self.trades: list[Trade] = []
        self.ids: dict[int, int] = {}  # liquibook's own order id -> the workload's
        self._order_class = liquibook.SimpleOrder
        self.listener = Listener()
        self.book = liquibook.liquibook_book_OrderBook()
        self.book.set_order_listener(self.listener)
        self.book.set_symbol(SYMBOL)
        self.orders: dict[int, Any] = {}  # liquibook holds raw pointers: keep every order alive
        self._recording = recording

    def calls(self, ops: Sequence[Op]) -> list[Call]:
        return _adapter_calls(self, ops)

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        order = self._order_class(side == 1, price, quantity)
        self.orders[order_id] = order
        if self._recording:
            self.ids[int(order.order_id_)] = order_id
        self.book.add(order)

    def cancel(self, order_id: int) -> None:
        self.book.cancel(self.orders[order_id])

    def trade_count(self) -> int:
        return int(self.listener.trades)


class LightMatchingEngineAdapter:
    """lightmatchingengine reports each match twice (aggressor and passive): the passive entry is
    the trade."""

    def __init__(self, recording: bool = False) -> None:
        self.engine = LightMatchingEngine()
        self.count = 0
        self.trades: list[Trade] = []
        self._recording = recording

    def calls(self, ops: Sequence[Op]) -> list[Call]:
        return _adapter_calls(self, ops)

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        order, trades = self.engine.add_order(SYMBOL, price, quantity, side)
        own = order.order_id
        for trade in trades:
            if trade.order_id != own:
                self.count += 1
                if self._recording:
                    self.trades.append(
                        (trade.order_id, order_id, int(trade.trade_price), int(trade.trade_qty))
                    )

    def cancel(self, order_id: int) -> None:
        self.engine.cancel_order(order_id, SYMBOL)

    def trade_count(self) -> int:
        return self.count


def _adapter_calls(adapter: Any, ops: Sequence[Op]) -> list[Call]:
    return [
        (adapter.add, (op.order_id, op.side, op.price, op.quantity))
        if isinstance(op, NewOp)
        else (adapter.cancel, (op.order_id,))
        for op in ops
    ]


ADAPTERS: dict[str, Any] = {
    "meridian": MeridianPerCall,
    "liquibook": LiquibookAdapter,
    "lightmatchingengine": LightMatchingEngineAdapter,
    "floor": FloorAdapter,
}
