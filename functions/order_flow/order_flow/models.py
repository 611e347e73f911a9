"""The data the order-flow state machine carries between its steps.

The approval step's outcome (``ApprovalOutcome``) lives with the approval logic in ``meridian.approvals``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meridian.domain import ACCOUNT_LEN, CLIENT_ORDER_ID_LEN, SYMBOL_LEN
from meridian.orders.record import OrderRecord, SideName, TimeInForceName

FlowOrderTypeName = Literal["LIMIT", "MARKET"]  # stop orders are not held for approval


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FlowOrder(_Frozen):
    """An order held for approval, as the order API stored it (prices in integer ticks)."""

    order_id: str = Field(min_length=1, max_length=64)
    client_order_id: str = Field(min_length=1, max_length=CLIENT_ORDER_ID_LEN)
    account: str = Field(min_length=1, max_length=ACCOUNT_LEN)
    symbol: str = Field(min_length=1, max_length=SYMBOL_LEN)
    side: SideName
    type: FlowOrderTypeName = "LIMIT"
    time_in_force: TimeInForceName = "GTC"
    quantity: int = Field(gt=0)
    price_ticks: int | None = Field(default=None, ge=0)
    order_flags: int = Field(default=0, ge=0)
    reference_ticks: int | None = Field(default=None, ge=0)  # a market order's value, set by the order API
    status: str = "PENDING_APPROVAL"
    submitted_by: str = ""
    created_at: str = ""


class RiskAssessment(_Frozen):
    notional: Decimal
    reasons: list[str]


class RecordUpdate(_Frozen):
    """The order's new state after the node answered (written by the state machine)."""

    status: str
    node: str
    node_order_id: int
    filled_quantity: int
    leaves_quantity: int
    last_seq: int
    price_ticks: int | None
    open: bool

    @classmethod
    def of(cls, record: OrderRecord) -> RecordUpdate:
        return cls(
            status=record.status,
            node=record.node or "",
            node_order_id=record.node_order_id or 0,
            filled_quantity=record.filled_quantity,
            leaves_quantity=record.leaves_quantity,
            last_seq=record.last_seq,
            price_ticks=record.price_ticks,
            open=record.is_open,
        )
