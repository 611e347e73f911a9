"""Per-account exposure: what an account's open orders and positions could become, kept atomically.

One item per trading account in the Exposure table holds, per symbol, the worst case of its
position in each direction, and the account's open orders and open notional:

* ``long:<symbol>`` = position + open buy quantity (the position if every open buy filled);
* ``short:<symbol>`` = -position + open sell quantity;
* ``open_orders``, ``open_notional`` (open quantity x limit price, summed over open orders);
* ``seeded_at``: the account's ledger positions were added once, before its first order.

An order *reserves* its contribution with one conditional ``UpdateItem`` (in the transaction that
creates it), so limits hold however many orders arrive at once: DynamoDB applies the updates of
one item one after another and each checks the limit against the sum before it. A fill moves
quantity from open to position (``long`` is unchanged by a buy's fill; ``short`` falls), a cancel,
reject or expiry releases the open quantity; both are applied by the code that records what the
node answered, in the same transaction as the order's record, so each happens once.

Conditions compare an attribute with a value worked out here (``long <= limit - quantity``):
DynamoDB conditions have no arithmetic. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

OPEN_ORDERS = "open_orders"
OPEN_NOTIONAL = "open_notional"
SEEDED_AT = "seeded_at"
TABLE_ENV = "EXPOSURE_TABLE"
DEFAULT_TABLE = "meridian-exposure"
ZERO = Decimal(0)

SideName = Literal["BUY", "SELL"]
Breach = Literal["MAX_OPEN_ORDERS", "MAX_NOTIONAL", "POSITION_LIMIT", "NOT_SEEDED"]


def long_attribute(symbol: str) -> str:
    return f"long:{symbol}"


def short_attribute(symbol: str) -> str:
    return f"short:{symbol}"


def _number(value: int | Decimal) -> dict[str, str]:
    return {"N": format(value, "f") if isinstance(value, Decimal) else str(value)}


def _merge(a: Mapping[str, int], b: Mapping[str, int], sign: int = 1) -> dict[str, int]:
    out = dict(a)
    for symbol, quantity in b.items():
        out[symbol] = out.get(symbol, 0) + sign * quantity
    return {s: q for s, q in out.items() if q}


@dataclass(frozen=True, slots=True)
class Exposure:
    """A change of (or a contribution to) one account's exposure."""

    open_orders: int = 0
    notional: Decimal = ZERO
    long: Mapping[str, int] = field(default_factory=dict)
    short: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Exposure) -> Exposure:
        return Exposure(
            self.open_orders + other.open_orders,
            self.notional + other.notional,
            _merge(self.long, other.long),
            _merge(self.short, other.short),
        )

    def __sub__(self, other: Exposure) -> Exposure:
        return self + (-other)

    def __neg__(self) -> Exposure:
        return Exposure(
            -self.open_orders,
            -self.notional,
            {s: -q for s, q in self.long.items()},
            {s: -q for s, q in self.short.items()},
        )

    def increases(self) -> Exposure:
        """Only what grows: what a change must reserve (conditionally) before the node acts on it."""
        return Exposure(
            max(self.open_orders, 0),
            max(self.notional, ZERO),
            {s: q for s, q in self.long.items() if q > 0},
            {s: q for s, q in self.short.items() if q > 0},
        )

    @property
    def is_zero(self) -> bool:
        return not (self.open_orders or self.notional or self.long or self.short)


def of_order(
    side: SideName, symbol: str, *, open_quantity: int, filled: int, is_open: bool, price: Decimal
) -> Exposure:
    """An order's contribution to its account: its fills as position, its open quantity at ``price``."""
    open_quantity = open_quantity if is_open else 0
    held = filled + open_quantity
    if side == "BUY":
        long, short = {symbol: held}, {symbol: -filled}
    else:
        long, short = {symbol: -filled}, {symbol: held}
    return Exposure(
        1 if is_open else 0,
        price * open_quantity,
        {s: q for s, q in long.items() if q},
        {s: q for s, q in short.items() if q},
    )


def of_fill(side: SideName, symbol: str, quantity: int, leaves: int, price: Decimal) -> Exposure:
    """What one fill changes for the resting order's account (``leaves`` after the fill)."""
    before = of_order(side, symbol, open_quantity=leaves + quantity, filled=0, is_open=True, price=price)
    after = of_order(side, symbol, open_quantity=leaves, filled=quantity, is_open=leaves > 0, price=price)
    return after - before


def of_cancel(side: SideName, symbol: str, leaves: int, price: Decimal) -> Exposure:
    """What cancelling a resting order's open ``leaves`` changes for its account."""
    return -of_order(side, symbol, open_quantity=leaves, filled=0, is_open=True, price=price)


@dataclass(frozen=True, slots=True)
class Limits:
    """The account's limits on open exposure (None: no limit of that kind)."""

    max_open_orders: int | None = None
    max_open_notional: Decimal | None = None
    position_limits: Mapping[str, int] = field(default_factory=dict)


class _Expression:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, str]] = {}

    def name(self, attribute: str) -> str:
        for alias, known in self.names.items():
            if known == attribute:
                return alias
        alias = f"#a{len(self.names)}"
        self.names[alias] = attribute
        return alias

    def value(self, number: int | Decimal) -> str:
        alias = f":v{len(self.values)}"
        self.values[alias] = _number(number)
        return alias

    def at_most(self, attribute: str, room: int | Decimal) -> str:
        """``attribute <= room``, a missing attribute counting as zero."""
        path, bound = self.name(attribute), self.value(room)
        if room >= 0:
            return f"(attribute_not_exists({path}) OR {path} <= {bound})"
        return f"{path} <= {bound}"


def _components(delta: Exposure) -> list[tuple[str, int | Decimal]]:
    parts: list[tuple[str, int | Decimal]] = []
    if delta.open_orders:
        parts.append((OPEN_ORDERS, delta.open_orders))
    if delta.notional:
        parts.append((OPEN_NOTIONAL, delta.notional))
    parts += [(long_attribute(s), q) for s, q in sorted(delta.long.items())]
    parts += [(short_attribute(s), q) for s, q in sorted(delta.short.items())]
    return parts


def update(table: str, account: str, delta: Exposure, limits: Limits | None = None) -> dict[str, Any]:
    """The ``Update`` of a TransactWriteItems entry that applies ``delta`` to the account's item.

    With ``limits`` it is a reservation: it applies only if no limit that ``delta`` grows towards
    would be passed, and only once the account's positions were seeded (see :func:`seed`).
    """
    expr = _Expression()
    # Adding zero changes nothing: it keeps the expression valid for a change of nothing.
    components = _components(delta) or [(OPEN_ORDERS, 0)]
    additions = [f"{expr.name(attr)} {expr.value(amount)}" for attr, amount in components]
    body: dict[str, Any] = {
        "TableName": table,
        "Key": {"account": {"S": account}},
        "UpdateExpression": "ADD " + ", ".join(additions),
    }
    if limits is not None:
        conditions = [f"attribute_exists({expr.name(SEEDED_AT)})"]
        if delta.open_orders > 0 and limits.max_open_orders is not None:
            conditions.append(expr.at_most(OPEN_ORDERS, limits.max_open_orders - delta.open_orders))
        if delta.notional > 0 and limits.max_open_notional is not None:
            conditions.append(expr.at_most(OPEN_NOTIONAL, limits.max_open_notional - delta.notional))
        for symbol, limit in sorted(limits.position_limits.items()):
            for attribute, grows in (
                (long_attribute(symbol), delta.long.get(symbol, 0)),
                (short_attribute(symbol), delta.short.get(symbol, 0)),
            ):
                if grows > 0:
                    conditions.append(expr.at_most(attribute, limit - grows))
        body["ConditionExpression"] = " AND ".join(conditions)
        body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    body["ExpressionAttributeNames"] = expr.names
    if expr.values:
        body["ExpressionAttributeValues"] = expr.values
    return body


def seed(table: str, account: str, positions: Mapping[str, int], at: datetime) -> dict[str, Any]:
    """The ``UpdateItem`` arguments that add the account's ledger positions once (before its first
    order): a position of +n makes ``long`` n and ``short`` -n. Conditional on not being seeded."""
    expr = _Expression()
    sets = [f"{expr.name(SEEDED_AT)} = :at"]
    values: dict[str, Any] = {":at": {"S": at.isoformat()}}
    for symbol, quantity in sorted(positions.items()):
        if not quantity:
            continue
        for attribute, amount in ((long_attribute(symbol), quantity), (short_attribute(symbol), -quantity)):
            path = expr.name(attribute)
            sets.append(f"{path} = if_not_exists({path}, :zero) + {expr.value(amount)}")
            values[":zero"] = {"N": "0"}
    return {
        "TableName": table,
        "Key": {"account": {"S": account}},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": f"attribute_not_exists({expr.name(SEEDED_AT)})",
        "ExpressionAttributeNames": expr.names,
        "ExpressionAttributeValues": {**expr.values, **values},
    }


def current(item: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """The numbers of a stored exposure item (DynamoDB attribute values) by attribute name."""
    return {name: Decimal(value["N"]) for name, value in (item or {}).items() if "N" in value}


def breach(item: Mapping[str, Any] | None, delta: Exposure, limits: Limits) -> tuple[Breach, str] | None:
    """Which limit reserving ``delta`` against the stored ``item`` would pass, and how; None if none."""
    if not item or SEEDED_AT not in item:
        return "NOT_SEEDED", "the account's positions are not loaded yet"
    now = current(item)
    orders = now.get(OPEN_ORDERS, ZERO)
    cap = limits.max_open_orders
    if delta.open_orders > 0 and cap is not None and orders + delta.open_orders > cap:
        return "MAX_OPEN_ORDERS", f"the account has {orders} open orders already"
    ceiling = limits.max_open_notional
    if delta.notional > 0 and ceiling is not None:
        notional = now.get(OPEN_NOTIONAL, ZERO) + delta.notional
        if notional > ceiling:
            return "MAX_NOTIONAL", f"open notional would be {notional}, above the limit of {ceiling}"
    for symbol, limit in sorted(limits.position_limits.items()):
        for direction, attribute, grows in (
            ("long", long_attribute(symbol), delta.long.get(symbol, 0)),
            ("short", short_attribute(symbol), delta.short.get(symbol, 0)),
        ):
            worst = now.get(attribute, ZERO) + grows
            if grows > 0 and worst > limit:
                return (
                    "POSITION_LIMIT",
                    f"{symbol} position with open orders could reach {worst} {direction}, "
                    f"beyond the limit of {limit}",
                )
    return None
