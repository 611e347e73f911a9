"""The order-flow state machine writes a held order's REJECTED record with an update expression of
its own (Step Functions cannot import one); it must stay the one ``meridian.orders.items`` declares
beside the other writes of an order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meridian.orders.items import HELD, HELD_CONDITION, HELD_REJECTED_UPDATE

DEFINITION = Path(__file__).resolve().parents[3] / "statemachines" / "order-flow.asl.json"


def _orders_updates(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every literal Update of the Orders table in the definition."""
    found = []
    for state in states.values():
        update = state.get("Parameters", {}).get("Update")
        if isinstance(update, dict) and update.get("TableName") == "${OrdersTableName}":
            found.append(update)
    return found


def test_the_rejection_of_a_held_order_is_the_layers_expression() -> None:
    states = json.loads(DEFINITION.read_text())["States"]
    (update,) = _orders_updates(states)
    assert update["UpdateExpression"] == HELD_REJECTED_UPDATE
    assert update["ConditionExpression"] == HELD_CONDITION
    assert update["ExpressionAttributeNames"] == {"#s": "status"}
    assert update["ExpressionAttributeValues"][":pending"] == {"S": HELD}
    assert update["ExpressionAttributeValues"][":rejected"] == {"S": "REJECTED"}
