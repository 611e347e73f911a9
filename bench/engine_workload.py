"""The seeded order stream every engine in the engine benchmark replays.

70% limit orders around a random-walking mid, 20% cancels of orders live at that point, 10%
marketable limit orders priced through the opposite best. Every order is valid for the benchmark
instrument, so the engines number their orders identically (1, 2, 3, ... in stream order) and a
cancel can name its order by that number. Liveness is decided by replaying the stream on the floor
engine while generating it, so cancels never name an order that has already filled.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from bench.floor_engine import FloorEngine

SYMBOL = "BENCH"
MID_START = 10_000
ACCOUNTS = tuple(f"ACCT{i:02d}" for i in range(8))


class NewOp(NamedTuple):
    order_id: int
    side: int  # 1 buy, 2 sell
    price: int
    quantity: int
    account: str
    client_order_id: str


class CancelOp(NamedTuple):
    order_id: int
    account: str


Op = NewOp | CancelOp


def describe(n: int, seed: int) -> dict[str, object]:
    return {
        "ops": n,
        "seed": seed,
        "symbol": SYMBOL,
        "mix": {"limit": 0.70, "cancel": 0.20, "marketable": 0.10},
        "mid_start": MID_START,
        "mid_walk": "each op: -1, 0, 0 or +1 tick",
        "limit_price": "mid -/+ (1 + min(expovariate(0.25), 40)) ticks",
        "marketable_price": "opposite best + 0..3 ticks through",
        "quantity": "uniform 1..100 for every order",
        "cancel_target": "uniform among live orders",
        "accounts": len(ACCOUNTS),
        "self_trade_prevention": "ALLOW (the other engines have none)",
    }


def generate(n: int, seed: int = 42) -> list[Op]:
    rng = random.Random(seed)
    floor = FloorEngine()
    ops: list[Op] = []
    candidates: list[int] = []  # ids that may still be live; dead ones are dropped when drawn
    owner: dict[int, str] = {}
    mid = MID_START
    next_id = 1
    while len(ops) < n:
        mid += rng.choice((-1, 0, 0, 1))
        draw = rng.random()
        if draw < 0.20 and floor.orders:
            while True:
                index = rng.randrange(len(candidates))
                order_id = candidates[index]
                candidates[index] = candidates[-1]
                candidates.pop()
                if order_id in floor.orders:
                    break
            ops.append(CancelOp(order_id, owner[order_id]))
            floor.cancel(order_id)
            continue
        side = rng.choice((1, 2))
        if draw < 0.30:  # marketable: through the opposite best by a few ticks, larger size
            best = floor.best(2 if side == 1 else 1) or mid
            price = best + rng.randint(0, 3) if side == 1 else best - rng.randint(0, 3)
            quantity = rng.randint(1, 100)
        else:  # passive-ish: a few ticks away from the mid
            offset = 1 + min(int(rng.expovariate(0.25)), 40)
            price = mid - offset if side == 1 else mid + offset
            quantity = rng.randint(1, 100)
        account = rng.choice(ACCOUNTS)
        ops.append(NewOp(next_id, side, max(price, 1), quantity, account, f"C{next_id}"))
        owner[next_id] = account
        floor.add(next_id, side, max(price, 1), quantity)
        if next_id in floor.orders:
            candidates.append(next_id)
        next_id += 1
    return ops
