"""Request streams for the engine tests: two instruments, three accounts, every order kind.

The hypothesis strategy draws mostly valid requests near each instrument's reference price, with a
share of invalid ones (off tick, off lot, out of band, unknown ids, wrong owners) and duplicates.
"""

from __future__ import annotations

from hypothesis import strategies as st

from meridian.domain import Instrument, OrderType, SelfTradePrevention, Side, TimeInForce
from meridian.protocol import (
    ORDER_FLAG_POST_ONLY,
    ORDER_FLAG_STP_SHIFT,
    Admin,
    AdminAction,
    Cancel,
    NewOrder,
    NewStopOrder,
    Replace,
)
from meridian_hotpath.engine import MatchingEngine

INSTRUMENTS = (
    Instrument("AAA", tick_size=5, lot_size=10, reference_price=1000, band_bps=500),
    Instrument("BBB", tick_size=1, lot_size=1, reference_price=200, band_bps=1000, max_order_quantity=500),
)
ACCOUNTS = ("ACC1", "ACC2", "ACC3")
Request = NewOrder | NewStopOrder | Cancel | Replace | Admin
TIME_IN_FORCE_MIX = (TimeInForce.GTC, TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK)
ADMIN_MIX = (AdminAction.HALT, AdminAction.RESUME, AdminAction.RESUME, AdminAction.END_OF_DAY, 9, 2)


def flags(post_only: bool = False, stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST) -> int:
    return (ORDER_FLAG_POST_ONLY if post_only else 0) | (int(stp) << ORDER_FLAG_STP_SHIFT)


def new_order(
    request_id: int,
    side: Side,
    quantity: int,
    price: int,
    *,
    symbol: str = "AAA",
    account: str = "ACC1",
    client_order_id: str | None = None,
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    order_flags: int = 0,
) -> NewOrder:
    coid = f"C{request_id}" if client_order_id is None else client_order_id
    return NewOrder(request_id, coid, account, symbol, side, order_type, tif, order_flags, quantity, price)


@st.composite
def _new_orders(draw: st.DrawFn, request_id: int) -> NewOrder:
    instrument = draw(st.sampled_from(INSTRUMENTS))
    tick, lot = instrument.tick_size, instrument.lot_size
    side = draw(st.sampled_from(Side))
    order_type = draw(st.sampled_from(OrderType)) if draw(st.integers(0, 9)) == 0 else OrderType.LIMIT
    tif = draw(
        st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK])
    )
    lots = draw(st.integers(1, 6))
    quantity = lots * lot
    if draw(st.integers(0, 19)) == 0:
        quantity = draw(
            st.sampled_from([0, -lot, lot + 1 if lot > 1 else 0, instrument.max_order_quantity + lot])
        )
    # Prices straddle the reference so that books cross; a few land off tick or out of band.
    price = instrument.reference_price + draw(st.integers(-4, 4)) * tick
    roll = draw(st.integers(0, 29))
    if roll == 0:
        price += 1 if tick > 1 else 0
    elif roll == 1:
        price = instrument.reference_price * 2
    elif roll == 2:
        price = 0
    stp = draw(st.sampled_from(SelfTradePrevention))
    post_only = draw(st.integers(0, 7)) == 0
    return new_order(
        request_id,
        side,
        quantity,
        price,
        symbol=instrument.symbol,
        account=draw(st.sampled_from(ACCOUNTS)),
        order_type=order_type,
        tif=tif,
        order_flags=flags(post_only, stp),
        client_order_id=f"C{draw(st.integers(1, request_id))}" if draw(st.integers(0, 14)) == 0 else None,
    )


@st.composite
def _new_stop_orders(draw: st.DrawFn, request_id: int) -> NewStopOrder:
    """Stop and stop-limit orders with stop prices around the reference, so trades trigger them
    (and some are met, or invalid, on arrival)."""
    order = draw(_new_orders(request_id))
    instrument = INSTRUMENTS[0] if order.symbol == "AAA" else INSTRUMENTS[1]
    stop_price = instrument.reference_price + draw(st.integers(-3, 3)) * instrument.tick_size
    roll = draw(st.integers(0, 19))
    if roll == 0:
        stop_price = 0
    elif roll == 1:
        stop_price += 1 if instrument.tick_size > 1 else 0
    elif roll == 2:
        stop_price = instrument.reference_price * 2
    flags = order.order_flags & ~ORDER_FLAG_POST_ONLY if draw(st.integers(0, 9)) else order.order_flags
    return NewStopOrder(*order._replace(order_flags=flags), stop_price)


OWNER = "?"  # a cancel or replace from the order's owner, on the order's symbol: see ``concretize``
# A cancel or replace with order id -k names the k-th newest live order (an older one if fewer live).


@st.composite
def _requests(draw: st.DrawFn, request_id: int, orders_so_far: int) -> Request:
    kind = draw(st.integers(0, 99))
    live = st.integers(-4, -1)  # see ``concretize``
    order_id = draw(st.one_of(live, live, live, st.integers(1, max(1, orders_so_far) + 1)))
    account = draw(st.sampled_from((OWNER, OWNER, OWNER, OWNER, *ACCOUNTS)))
    symbol = draw(st.sampled_from((OWNER, OWNER, OWNER, OWNER, OWNER, OWNER, "", "AAA", "BBB")))
    if kind < 50:
        return draw(_new_orders(request_id))
    if kind < 60:
        return draw(_new_stop_orders(request_id))
    if kind < 78:
        return Cancel(request_id, account, symbol, order_id)
    if kind < 97:
        # Lots and ticks from the reference price: ``concretize`` scales them to the order's instrument.
        lots = draw(st.integers(0, 6))
        ticks = draw(st.integers(-4, 4))
        return Replace(request_id, account, symbol, order_id, lots, ticks)
    action = draw(st.sampled_from(ADMIN_MIX))
    return Admin(request_id, draw(st.sampled_from(["AAA", "BBB", "", "ZZZ"])), action)


@st.composite
def request_streams(draw: st.DrawFn, max_size: int = 80) -> list[Request]:
    size = draw(st.integers(1, max_size))
    stream: list[Request] = []
    for request_id in range(1, size + 1):
        stream.append(
            draw(_requests(request_id, sum(isinstance(r, NewOrder | NewStopOrder) for r in stream)))
        )
    return stream


def _live_order(engine: MatchingEngine, rank: int) -> int:
    """The id of the live order ``rank`` (-1 newest, -2 the one before, ...)."""
    order_id, found = 1, []
    while (view := engine.order_status(order_id)) is not None:
        if view.leaves_quantity:
            found.append(order_id)
        order_id += 1
    return found[max(rank, -len(found))] if found else 1


def concretize(stream: list[Request]) -> list[Request]:
    """Resolve OWNER and negative order ids in cancels and replaces against the engine's state.

    Order ids depend on which orders the engine accepted, so the stream is replayed on an engine.
    """
    engine = MatchingEngine(INSTRUMENTS)
    concrete: list[Request] = []
    for request in stream:
        if isinstance(request, Cancel | Replace):
            if request.order_id < 0:
                request = request._replace(order_id=_live_order(engine, request.order_id))
            view = engine.order_status(request.order_id)
            if isinstance(request, Replace):
                instrument = INSTRUMENTS[1] if view and view.symbol == "BBB" else INSTRUMENTS[0]
                request = request._replace(
                    quantity=request.quantity * instrument.lot_size,
                    price=instrument.reference_price + request.price * instrument.tick_size,
                )
            request = request._replace(
                account=(view.account if view else "ACC1") if request.account == OWNER else request.account,
                symbol=(view.symbol if view else "AAA") if request.symbol == OWNER else request.symbol,
            )
        engine.process(request)
        concrete.append(request)
    return concrete
