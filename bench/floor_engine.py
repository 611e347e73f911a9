"""The floor: the least a price-time priority book can do in Python (a baseline, not a product).

A dict of price -> deque per side, a heap of prices per side with lazy deletion, orders as small
lists, no validation and no events: only a trade counter. The engine benchmark measures Meridian
against it, and the workload generator uses it to know which orders are live.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush

BUY = 1

# An order is [order_id, leaves, side, price].
FloorOrder = list[int]


class FloorEngine:
    def __init__(self) -> None:
        self.bids: dict[int, deque[FloorOrder]] = {}
        self.asks: dict[int, deque[FloorOrder]] = {}
        self.bid_heap: list[int] = []  # minus the price, so the best bid is on top
        self.ask_heap: list[int] = []
        self.orders: dict[int, FloorOrder] = {}
        self.trades = 0

    def add(self, order_id: int, side: int, price: int, quantity: int) -> None:
        if side == BUY:
            levels, heap, sign = self.asks, self.ask_heap, 1
        else:
            levels, heap, sign = self.bids, self.bid_heap, -1
        while quantity and heap:
            level_price = heap[0] * sign
            level = levels.get(level_price)
            if level is None:  # emptied by a cancel: drop the stale heap entry
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

    def cancel(self, order_id: int) -> None:
        order = self.orders.pop(order_id, None)
        if order is None:
            return
        levels = self.bids if order[2] == BUY else self.asks
        level = levels[order[3]]
        level.remove(order)
        if not level:
            del levels[order[3]]

    def best(self, side: int) -> int:
        """Best price on ``side`` (0 when empty); not used on the measured path."""
        levels, heap, sign = (self.bids, self.bid_heap, -1) if side == BUY else (self.asks, self.ask_heap, 1)
        while heap and heap[0] * sign not in levels:
            heappop(heap)
        return heap[0] * sign if heap else 0
