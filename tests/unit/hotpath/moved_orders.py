"""Order records as the order API stores them, for the symbol-move tests (an Orders table on moto)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meridian.domain import Side
from meridian.executions import order_id_for
from meridian.orders.items import record_to_item
from meridian.orders.record import OrderRecord
from meridian.protocol import Ack


def create_orders_table(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def order_item(ack: Ack, node: str, last_seq: int, status: str = "NEW") -> dict[str, Any]:
    """The Orders-table item of the order ``ack`` answered: open with its leaves, or closed (0)."""
    now = datetime.now(UTC)
    record = OrderRecord(
        order_id=order_id_for(ack.account, ack.client_order_id),
        account=ack.account,
        client_order_id=ack.client_order_id,
        symbol=ack.symbol,
        side="BUY" if ack.side == Side.BUY else "SELL",
        type="LIMIT",
        time_in_force="GTC",
        quantity=ack.quantity,
        price_ticks=ack.price,
        status=status,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        leaves_quantity=ack.leaves_quantity if status == "NEW" else 0,
        node=node,
        node_order_id=ack.order_id,
        last_seq=last_seq,  # the newest answer that touched it
    )
    return record_to_item(record)
