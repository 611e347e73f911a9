"""Pydantic models at the API's edges: request bodies, answers, errors, and the stored order record.

Prices cross the API as decimal strings in currency units ("190.00") and are kept inside as integer
ticks of the instrument (``Instrument.to_ticks``); quantities are integers in lots of one unit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meridian.domain import MAX_QUANTITY
from meridian.orders.record import (
    Approval,
    CancelReasonName,
    OrderStatusName,
    OrderTypeName,
    SideName,
    TimeInForceName,
)

SelfTradePreventionName = Literal["CANCEL_NEWEST", "CANCEL_OLDEST", "CANCEL_BOTH", "ALLOW"]
UserType = Literal["trader", "risk_officer", "compliance_officer", "operator"]

PriceText = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,12}(\.[0-9]{1,8})?$",
        description="Decimal price in currency units, on the instrument's tick grid",
        examples=["190.00"],
    ),
]
ClientOrderId = Annotated[
    str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9._:-]+$", examples=["my-order-0001"])
]
SymbolName = Annotated[str, Field(min_length=1, max_length=8, pattern=r"^[A-Z0-9]+$", examples=["AAPL"])]
Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY)]


class _Model(BaseModel):
    # Each model's validator and serializer are built when first used, not at import: a cold start
    # builds only those of the route it serves (the OpenAPI export builds them all).
    model_config = ConfigDict(defer_build=True)


class _Strict(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# ---- requests ---------------------------------------------------------------------------------


class OrderRequest(_Strict):
    """A new order. LIMIT and STOP_LIMIT orders carry a price; MARKET and STOP orders must not. STOP
    and STOP_LIMIT orders carry a ``stop_price``: they wait (PENDING_TRIGGER) until a trade reaches
    it (at or above for a buy, at or below for a sell), then work as a MARKET or LIMIT order."""

    symbol: SymbolName
    side: SideName
    type: OrderTypeName = "LIMIT"
    time_in_force: TimeInForceName = "GTC"
    quantity: Quantity
    price: PriceText | None = None
    client_order_id: ClientOrderId | None = Field(
        default=None, description="Your id for the order; a retry with the same id never makes a second order"
    )
    stop_price: PriceText | None = Field(
        default=None, description="STOP and STOP_LIMIT orders: the trade price that triggers them"
    )
    post_only: bool = False
    self_trade_prevention: SelfTradePreventionName = "CANCEL_NEWEST"

    @model_validator(mode="after")
    def _price_matches_type(self) -> OrderRequest:
        priced = self.type in ("LIMIT", "STOP_LIMIT")
        stop = self.type in ("STOP", "STOP_LIMIT")
        if priced and self.price is None:
            raise ValueError(f"a {self.type} order needs a price")
        if not priced and self.price is not None:
            raise ValueError(f"a {self.type} order takes no price")
        if stop and self.stop_price is None:
            raise ValueError(f"a {self.type} order needs a stop_price")
        if not stop and self.stop_price is not None:
            raise ValueError(f"a {self.type} order takes no stop_price")
        if self.type != "LIMIT" and self.post_only:
            raise ValueError(f"a {self.type} order cannot be post-only")
        return self


class ReplaceRequest(_Strict):
    """New quantity and/or price for a resting order."""

    quantity: Quantity | None = None
    price: PriceText | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> ReplaceRequest:
        if self.quantity is None and self.price is None:
            raise ValueError("give a new quantity, a new price, or both")
        return self


class ApprovalRequest(_Strict):
    decision: Literal["APPROVE", "REJECT"]
    comment: str = Field(default="", max_length=500)


class TradingControlRequest(_Strict):
    """Halt or resume one symbol, or every symbol when ``symbol`` is absent."""

    symbol: SymbolName | None = None
    reason: str = Field(default="", max_length=200)


# ---- answers ----------------------------------------------------------------------------------


class ErrorDetail(_Model):
    loc: list[str | int] = Field(default_factory=list)
    type: str = ""
    msg: str = ""


class ErrorResponse(_Model):
    """Every error answer: a machine-readable code, a sentence, and field-level details."""

    error: str = Field(examples=["MAX_NOTIONAL"])
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    order_id: str | None = Field(
        default=None, description="The order the error is about, when one was recorded"
    )


class FillOut(_Model):
    execution_id: str
    price: str
    quantity: int
    liquidity: Literal["MAKER", "TAKER"]
    occurred_at: datetime | None = Field(
        default=None, description="When the trade happened (from the ledger)"
    )


class FillList(_Model):
    """Every fill of one order, oldest first, as the ledger recorded them."""

    order_id: str
    fills: list[FillOut]


class OrderOut(_Model):
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: SideName
    type: OrderTypeName
    time_in_force: TimeInForceName
    quantity: int
    price: str | None = None
    stop_price: str | None = Field(default=None, description="STOP and STOP_LIMIT orders' trigger price")
    status: OrderStatusName
    filled_quantity: int = 0
    leaves_quantity: int = 0
    average_price: str | None = Field(
        default=None, description="Average price of the fills so far (two decimals finer than the tick)"
    )
    reject_reason: str | None = None
    cancel_reason: CancelReasonName | None = Field(
        default=None,
        description="Why the order ended without trading its whole quantity: USER (a cancel), IOC_REMAINDER,"
        " FOK_UNFILLED, SELF_TRADE, END_OF_DAY, NO_LIQUIDITY (a market order found no more)",
    )
    approval: Approval | None = None
    created_at: datetime
    updated_at: datetime
    fills: list[FillOut] = Field(
        default_factory=list,
        description="Fills made by this request (GET /orders/{order_id}/fills lists all of them)",
    )


class OrderList(_Model):
    orders: list[OrderOut]
    next_token: str | None = Field(default=None, description="Pass back as next_token for the next page")


class PositionOut(_Model):
    account: str
    symbol: str
    quantity: int
    average_price: str | None = None
    realized_pnl: str | None = None
    updated_at: datetime | None = None


class PositionList(_Model):
    positions: list[PositionOut]


_OTHER_SIDE = "null for a trader when it is the other side of the trade (risk and compliance see both)"


class TradeOut(_Model):
    execution_id: str
    symbol: str
    price: str
    quantity: int
    buy_account: str | None = Field(description=f"The buyer's account; {_OTHER_SIDE}")
    sell_account: str | None = Field(description=f"The seller's account; {_OTHER_SIDE}")
    buy_order_id: str | None = Field(description=f"The buy order's id; {_OTHER_SIDE}")
    sell_order_id: str | None = Field(description=f"The sell order's id; {_OTHER_SIDE}")
    aggressor_side: SideName
    occurred_at: datetime


class TradeList(_Model):
    trades: list[TradeOut]
    next_token: str | None = None


class BookLevel(_Model):
    price: str
    quantity: int


class LastTrade(_Model):
    price: str
    quantity: int
    execution_id: str
    occurred_at: str


class MarketDataOut(_Model):
    symbol: str
    bid_price: str | None = None
    bid_quantity: int | None = None
    ask_price: str | None = None
    ask_quantity: int | None = None
    bids: list[BookLevel] = Field(default_factory=list)
    asks: list[BookLevel] = Field(default_factory=list)
    last_trades: list[LastTrade] = Field(default_factory=list)
    node_seq: int | None = None
    book_seq: int | None = Field(
        default=None, description="The symbol's book update number (the streaming gateway's book sequence)"
    )
    updated_at: str | None = None


class TradingControlOut(_Model):
    scope: str = Field(description="GLOBAL or the symbol")
    halted: bool
    actor: str
    reason: str = ""
    node_acknowledged: bool = Field(description="False when the matching node could not be told; retry")
    updated_at: datetime


class HealthOut(_Model):
    status: Literal["ok", "degraded"]
    version: str
    matching_node: Literal["up", "down", "unknown"]
