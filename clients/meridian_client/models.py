"""Models of the Meridian order API, generated from docs/api/openapi.json by `make openapi`
(tools/sdk_models.py, datamodel-code-generator): do not edit by hand."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, RootModel

from meridian_client.base import ApiModel


class Approval(ApiModel):
    decision: Annotated[Literal["APPROVE", "REJECT"], Field(title="Decision")]
    actor: Annotated[str, Field(title="Actor")]
    comment: Annotated[str | None, Field(title="Comment")] = ""
    decided_at: Annotated[AwareDatetime, Field(title="Decided At")]


class ApprovalRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    decision: Annotated[Literal["APPROVE", "REJECT"], Field(title="Decision")]
    comment: Annotated[str | None, Field(max_length=500, title="Comment")] = ""


class BookLevel(ApiModel):
    price: Annotated[str, Field(title="Price")]
    quantity: Annotated[int, Field(title="Quantity")]


class ErrorDetail(ApiModel):
    loc: Annotated[list[str | int] | None, Field(title="Loc")] = None
    type: Annotated[str | None, Field(title="Type")] = ""
    msg: Annotated[str | None, Field(title="Msg")] = ""


class ErrorResponse(ApiModel):
    error: Annotated[str, Field(examples=["MAX_NOTIONAL"], title="Error")]
    message: Annotated[str, Field(title="Message")]
    details: Annotated[list[ErrorDetail] | None, Field(title="Details")] = None
    order_id: Annotated[
        str | None,
        Field(
            description="The order the error is about, when one was recorded",
            title="Order Id",
        ),
    ] = None


class FillOut(ApiModel):
    execution_id: Annotated[str, Field(title="Execution Id")]
    price: Annotated[str, Field(title="Price")]
    quantity: Annotated[int, Field(title="Quantity")]
    liquidity: Annotated[Literal["MAKER", "TAKER"], Field(title="Liquidity")]
    occurred_at: Annotated[
        AwareDatetime | None,
        Field(description="When the trade happened (from the ledger)", title="Occurred At"),
    ] = None


class HealthOut(ApiModel):
    status: Annotated[Literal["ok", "degraded"], Field(title="Status")]
    version: Annotated[str, Field(title="Version")]
    matching_node: Annotated[Literal["up", "down", "unknown"], Field(title="Matching Node")]


class LastTrade(ApiModel):
    price: Annotated[str, Field(title="Price")]
    quantity: Annotated[int, Field(title="Quantity")]
    execution_id: Annotated[str, Field(title="Execution Id")]
    occurred_at: Annotated[str, Field(title="Occurred At")]


class MarketDataOut(ApiModel):
    symbol: Annotated[str, Field(title="Symbol")]
    bid_price: Annotated[str | None, Field(title="Bid Price")] = None
    bid_quantity: Annotated[int | None, Field(title="Bid Quantity")] = None
    ask_price: Annotated[str | None, Field(title="Ask Price")] = None
    ask_quantity: Annotated[int | None, Field(title="Ask Quantity")] = None
    bids: Annotated[list[BookLevel] | None, Field(title="Bids")] = None
    asks: Annotated[list[BookLevel] | None, Field(title="Asks")] = None
    last_trades: Annotated[list[LastTrade] | None, Field(title="Last Trades")] = None
    node_seq: Annotated[int | None, Field(title="Node Seq")] = None
    book_seq: Annotated[
        int | None,
        Field(
            description="The symbol's book update number (the streaming gateway's book sequence)",
            title="Book Seq",
        ),
    ] = None
    updated_at: Annotated[str | None, Field(title="Updated At")] = None


class OrderOut(ApiModel):
    order_id: Annotated[str, Field(title="Order Id")]
    client_order_id: Annotated[str, Field(title="Client Order Id")]
    account: Annotated[str, Field(title="Account")]
    symbol: Annotated[str, Field(title="Symbol")]
    side: Annotated[Literal["BUY", "SELL"], Field(title="Side")]
    type: Annotated[Literal["LIMIT", "MARKET", "STOP", "STOP_LIMIT"], Field(title="Type")]
    time_in_force: Annotated[Literal["GTC", "IOC", "FOK", "DAY"], Field(title="Time In Force")]
    quantity: Annotated[int, Field(title="Quantity")]
    price: Annotated[str | None, Field(title="Price")] = None
    stop_price: Annotated[
        str | None,
        Field(description="STOP and STOP_LIMIT orders' trigger price", title="Stop Price"),
    ] = None
    status: Annotated[
        Literal[
            "NEW",
            "PARTIALLY_FILLED",
            "FILLED",
            "CANCELLED",
            "REJECTED",
            "PENDING_APPROVAL",
            "EXPIRED",
            "UNCONFIRMED",
            "PENDING_TRIGGER",
        ],
        Field(title="Status"),
    ]
    filled_quantity: Annotated[int | None, Field(title="Filled Quantity")] = 0
    leaves_quantity: Annotated[int | None, Field(title="Leaves Quantity")] = 0
    average_price: Annotated[
        str | None,
        Field(
            description="Average price of the fills so far (two decimals finer than the tick)",
            title="Average Price",
        ),
    ] = None
    reject_reason: Annotated[str | None, Field(title="Reject Reason")] = None
    cancel_reason: Annotated[
        Literal["USER", "IOC_REMAINDER", "FOK_UNFILLED", "SELF_TRADE", "END_OF_DAY", "NO_LIQUIDITY", "HALT"]
        | None,
        Field(
            description="Why the order ended without trading its whole quantity: USER (a cancel), IOC_REMAINDER, FOK_UNFILLED, SELF_TRADE, END_OF_DAY, NO_LIQUIDITY (a market order found no more)",
            title="Cancel Reason",
        ),
    ] = None
    approval: Approval | None = None
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]
    fills: Annotated[
        list[FillOut] | None,
        Field(
            description="Fills made by this request (GET /orders/{order_id}/fills lists all of them)",
            title="Fills",
        ),
    ] = None


class Price(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Decimal price in currency units, on the instrument's tick grid",
            examples=["190.00"],
            pattern="^[0-9]{1,12}(\\.[0-9]{1,8})?$",
            title="Price",
        ),
    ]


class ClientOrderId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Your id for the order; a retry with the same id never makes a second order",
            examples=["my-order-0001"],
            max_length=20,
            min_length=1,
            pattern="^[A-Za-z0-9._:-]+$",
            title="Client Order Id",
        ),
    ]


class StopPrice(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Decimal price in currency units, on the instrument's tick grid",
            examples=["190.00"],
            pattern="^[0-9]{1,12}(\\.[0-9]{1,8})?$",
            title="Stop Price",
        ),
    ]


class OrderRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: Annotated[
        str,
        Field(
            examples=["AAPL"],
            max_length=8,
            min_length=1,
            pattern="^[A-Z0-9]+$",
            title="Symbol",
        ),
    ]
    side: Annotated[Literal["BUY", "SELL"], Field(title="Side")]
    type: Annotated[Literal["LIMIT", "MARKET", "STOP", "STOP_LIMIT"] | None, Field(title="Type")] = "LIMIT"
    time_in_force: Annotated[Literal["GTC", "IOC", "FOK", "DAY"] | None, Field(title="Time In Force")] = "GTC"
    quantity: Annotated[int, Field(gt=0, le=1000000000000, title="Quantity")]
    price: Annotated[Price | None, Field(title="Price")] = None
    client_order_id: Annotated[
        ClientOrderId | None,
        Field(
            description="Your id for the order; a retry with the same id never makes a second order",
            title="Client Order Id",
        ),
    ] = None
    stop_price: Annotated[
        StopPrice | None,
        Field(
            description="STOP and STOP_LIMIT orders: the trade price that triggers them",
            title="Stop Price",
        ),
    ] = None
    post_only: Annotated[bool | None, Field(title="Post Only")] = False
    self_trade_prevention: Annotated[
        Literal["CANCEL_NEWEST", "CANCEL_OLDEST", "CANCEL_BOTH", "ALLOW"] | None,
        Field(title="Self Trade Prevention"),
    ] = "CANCEL_NEWEST"


class PositionOut(ApiModel):
    account: Annotated[str, Field(title="Account")]
    symbol: Annotated[str, Field(title="Symbol")]
    quantity: Annotated[int, Field(title="Quantity")]
    average_price: Annotated[str | None, Field(title="Average Price")] = None
    realized_pnl: Annotated[str | None, Field(title="Realized Pnl")] = None
    updated_at: Annotated[AwareDatetime | None, Field(title="Updated At")] = None


class Quantity(RootModel[int]):
    root: Annotated[int, Field(gt=0, le=1000000000000, title="Quantity")]


class ReplaceRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    quantity: Annotated[Quantity | None, Field(title="Quantity")] = None
    price: Annotated[Price | None, Field(title="Price")] = None


class TradeOut(ApiModel):
    execution_id: Annotated[str, Field(title="Execution Id")]
    symbol: Annotated[str, Field(title="Symbol")]
    price: Annotated[str, Field(title="Price")]
    quantity: Annotated[int, Field(title="Quantity")]
    buy_account: Annotated[
        str | None,
        Field(
            description="The buyer's account; null for a trader when it is the other side of the trade (risk and compliance see both)",
            title="Buy Account",
        ),
    ]
    sell_account: Annotated[
        str | None,
        Field(
            description="The seller's account; null for a trader when it is the other side of the trade (risk and compliance see both)",
            title="Sell Account",
        ),
    ]
    buy_order_id: Annotated[
        str | None,
        Field(
            description="The buy order's id; null for a trader when it is the other side of the trade (risk and compliance see both)",
            title="Buy Order Id",
        ),
    ]
    sell_order_id: Annotated[
        str | None,
        Field(
            description="The sell order's id; null for a trader when it is the other side of the trade (risk and compliance see both)",
            title="Sell Order Id",
        ),
    ]
    aggressor_side: Annotated[Literal["BUY", "SELL"], Field(title="Aggressor Side")]
    occurred_at: Annotated[AwareDatetime, Field(title="Occurred At")]


class TradingControlOut(ApiModel):
    scope: Annotated[str, Field(description="GLOBAL or the symbol", title="Scope")]
    halted: Annotated[bool, Field(title="Halted")]
    actor: Annotated[str, Field(title="Actor")]
    reason: Annotated[str | None, Field(title="Reason")] = ""
    node_acknowledged: Annotated[
        bool,
        Field(
            description="False when the matching node could not be told; retry",
            title="Node Acknowledged",
        ),
    ]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class Symbol(RootModel[str]):
    root: Annotated[
        str,
        Field(
            examples=["AAPL"],
            max_length=8,
            min_length=1,
            pattern="^[A-Z0-9]+$",
            title="Symbol",
        ),
    ]


class TradingControlRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: Annotated[Symbol | None, Field(title="Symbol")] = None
    reason: Annotated[str | None, Field(max_length=200, title="Reason")] = ""


class ValidationError(ApiModel):
    loc: Annotated[list[str | int], Field(title="Location")]
    type: Annotated[str, Field(title="Error Type")]


class ResponseValidationError(ApiModel):
    detail: Annotated[list[ValidationError] | None, Field(title="Detail")] = None


class FillList(ApiModel):
    order_id: Annotated[str, Field(title="Order Id")]
    fills: Annotated[list[FillOut], Field(title="Fills")]


class HTTPValidationError(ApiModel):
    detail: Annotated[list[ValidationError] | None, Field(title="Detail")] = None


class OrderList(ApiModel):
    orders: Annotated[list[OrderOut], Field(title="Orders")]
    next_token: Annotated[
        str | None,
        Field(description="Pass back as next_token for the next page", title="Next Token"),
    ] = None


class PositionList(ApiModel):
    positions: Annotated[list[PositionOut], Field(title="Positions")]


class TradeList(ApiModel):
    trades: Annotated[list[TradeOut], Field(title="Trades")]
    next_token: Annotated[str | None, Field(title="Next Token")] = None
