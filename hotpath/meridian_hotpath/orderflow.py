"""Synthetic, reproducible order flow for drills, benchmarks and crash tests.

Prices stay within a few ticks of each instrument's reference price so that orders cross often
(trades, partial fills, resting orders, cancels and replaces all happen); every generated request
is valid on the wire, and most pass the engine's checks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument, OrderType, Side, TimeInForce
from meridian.protocol import Cancel, NewOrder, Replace
from meridian_hotpath.journal import StateChange


def synthetic_flow(
    seed: int,
    count: int,
    instruments: Sequence[Instrument] = DEFAULT_INSTRUMENTS,
    accounts: int = 8,
    id_prefix: str = "o",
    first_order_id_guess: int = 1,
) -> Iterator[StateChange]:
    """``count`` requests: mostly limit orders, some market orders, cancels and replaces.

    Cancels and replaces name an earlier order by the id the engine probably assigned it (ids
    count up from ``first_order_id_guess``); a miss is just a reject, deterministic like the rest.
    """
    rng = random.Random(seed)
    sent: list[tuple[int, str, str]] = []  # (probable order id, account, symbol) of each new order
    for n in range(count):
        roll = rng.random()
        if roll < 0.12 and sent:
            order_id, account, symbol = rng.choice(sent[-20:])  # recent orders are likelier to rest
            if roll < 0.08:
                yield Cancel(n + 1, account, symbol, order_id)
            else:
                instrument = next(i for i in instruments if i.symbol == symbol)
                quantity = instrument.lot_size * rng.randint(1, 20)
                yield Replace(n + 1, account, symbol, order_id, quantity, _near_reference(rng, instrument))
            continue
        instrument = rng.choice(instruments)
        account = f"acct{rng.randrange(accounts)}"
        price = _near_reference(rng, instrument)
        quantity = instrument.lot_size * rng.randint(1, 20)
        # Plain ints, as requests arrive off the wire: state checksums must not see enum types.
        side = int(Side.BUY if rng.random() < 0.5 else Side.SELL)
        if roll < 0.16:
            order_type, time_in_force, price = int(OrderType.MARKET), int(TimeInForce.IOC), 0
        else:
            order_type = int(OrderType.LIMIT)
            time_in_force = int(TimeInForce.IOC if rng.random() < 0.15 else TimeInForce.GTC)
        sent.append((first_order_id_guess + len(sent), account, instrument.symbol))
        symbol = instrument.symbol
        yield NewOrder(
            n + 1, f"{id_prefix}{n}", account, symbol, side, order_type, time_in_force, 0, quantity, price
        )


def _near_reference(rng: random.Random, instrument: Instrument) -> int:
    reference = instrument.reference_price or 10_000
    ticks = rng.randint(-5, 5)
    base = reference - reference % instrument.tick_size
    return max(instrument.tick_size, base + ticks * instrument.tick_size)
