"""Operator actions: halt and resume trading (one symbol or all), and the health check."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from meridian.events import TradingHalted
from meridian.orders.record import utc_now
from meridian.protocol import Admin, AdminAck, AdminAction
from orders_api.auth import Action, Caller
from orders_api.dal.hotpath import NodeOutcomeUnknown, NodeUnavailable
from orders_api.errors import NotFoundError
from orders_api.models import HealthOut, TradingControlOut, TradingControlRequest
from orders_api.services import Services

logger = Logger(child=True)

GLOBAL = "GLOBAL"


def set_trading(
    services: Services, caller: Caller, request: TradingControlRequest, halted: bool
) -> TradingControlOut:
    """Store the control first (the API refuses orders from then on), then tell the node(s).

    A node that cannot be told is reported (``node_acknowledged`` false) rather than failing the
    request: the stored halt already stops new orders at the API, and repeating the call is safe.
    """
    caller.require(Action.HALT)
    if request.symbol is not None and request.symbol not in services.instruments:
        raise NotFoundError("UNKNOWN_SYMBOL", f"{request.symbol} is not traded here")
    now = utc_now()
    scope = GLOBAL if request.symbol is None else f"SYMBOL#{request.symbol}"
    services.reference.set_halted(scope, halted, caller.principal, request.reason, now)
    acknowledged = _tell_nodes(services, request.symbol, AdminAction.HALT if halted else AdminAction.RESUME)
    event = TradingHalted(
        event_id=f"trading:{scope}:{'halt' if halted else 'resume'}:{now.isoformat()}",
        occurred_at=now,
        symbol=request.symbol,
        halted=halted,
        actor=caller.principal,
        reason=request.reason,
    )
    services.events.publish([event])
    return TradingControlOut(
        scope=request.symbol or GLOBAL,
        halted=halted,
        actor=caller.principal,
        reason=request.reason,
        node_acknowledged=acknowledged,
        updated_at=now,
    )


def _tell_nodes(services: Services, symbol: str | None, action: AdminAction) -> bool:
    gateway = services.gateway
    try:
        if symbol is not None:
            answers = [gateway.send(symbol, Admin(0, symbol, int(action)))]
        else:
            answers = [gateway.send_to(node, Admin(0, "", int(action))) for node in gateway.nodes()]
    except (NodeUnavailable, NodeOutcomeUnknown):
        logger.warning(
            "matching node not told of trading control", extra={"symbol": symbol, "action": action.name}
        )
        return False
    return bool(answers) and all(isinstance(a.messages[-1], AdminAck) for a in answers)


def health(services: Services, caller: Caller) -> HealthOut:
    caller.require(Action.HEALTH)
    node_up = services.gateway.ping()
    return HealthOut(
        status="ok" if node_up else "degraded",
        version=services.settings.version,
        matching_node="up" if node_up else "down",
    )
