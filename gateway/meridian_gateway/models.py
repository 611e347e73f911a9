"""The gateway's WebSocket protocol: what a client may send and every message it may receive.

Every frame is JSON text. A client sends one request object a frame; the gateway sends a JSON
array of one or more messages a frame (under load it packs what is queued for the connection into
one frame). ``docs/api/streaming.schema.json`` is generated from these models
(``python -m meridian_gateway.schema``) and a test keeps it equal to them; the gateway's own
messages are built as plain dicts on the fan-out path and a test validates them against these
models.

Prices are decimal strings in the instrument's currency (as the REST API's), quantities integers.
``node_ts`` is the matching node's time of the update (ns since the epoch).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

CHANNEL_PATTERN = r"^(orders|(book|trades)\.[A-Z0-9]{1,8})$"
Channel = Annotated[
    str, Field(pattern=CHANNEL_PATTERN, description="book.<SYMBOL>, trades.<SYMBOL> or orders")
]
RequestId = Annotated[int, Field(ge=0, le=2**53, description="Echoed in the answer")]
Price = Annotated[str, Field(pattern=r"^\d+(\.\d+)?$")]
Level = Annotated[tuple[Price, Annotated[int, Field(ge=0)]], Field(description="[price, quantity]")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: RequestId = 0


class Subscribe(_Request):
    op: Literal["subscribe"]
    channels: list[Channel] = Field(min_length=1, max_length=50)


class Unsubscribe(_Request):
    op: Literal["unsubscribe"]
    channels: list[Channel] = Field(min_length=1, max_length=50)


class Resync(_Request):
    """Ask for a fresh ``book_snapshot`` of a subscribed book (after a gap)."""

    op: Literal["resync"]
    channel: Channel


class Ping(_Request):
    op: Literal["ping"]


ClientRequest = Annotated[Subscribe | Unsubscribe | Resync | Ping, Field(discriminator="op")]
REQUEST: TypeAdapter[Subscribe | Unsubscribe | Resync | Ping] = TypeAdapter(ClientRequest)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Welcome(_Message):
    type: Literal["welcome"]
    principal: str
    account: str | None = Field(description="The trading account whose orders the orders channel carries")
    heartbeat_s: float
    max_subscriptions: int
    max_queue: int


class Subscribed(_Message):
    type: Literal["subscribed", "unsubscribed"]
    id: int
    channels: list[str]


class Pong(_Message):
    type: Literal["pong"]
    id: int


class Heartbeat(_Message):
    type: Literal["heartbeat"]
    ts: int = Field(description="The gateway's time, ns since the epoch")


class Error(_Message):
    type: Literal["error"]
    id: int | None = None
    code: Literal[
        "BAD_REQUEST",
        "UNKNOWN_CHANNEL",
        "FORBIDDEN",
        "TOO_MANY_SUBSCRIPTIONS",
        "NOT_SUBSCRIBED",
        "UNAVAILABLE",
    ]
    message: str
    channel: str | None = None


class BookSnapshot(_Message):
    """The whole book (the node's published depth): replace what you hold."""

    type: Literal["book_snapshot"]
    channel: str
    symbol: str
    seq: int = Field(ge=0, description="The symbol's book sequence (the node's book_seq); 0: no book yet")
    bids: list[Level]
    asks: list[Level]
    node_seq: int = Field(ge=0)
    node_ts: int = Field(ge=0)


class BookUpdate(_Message):
    """Changed levels (quantity 0: the level is gone). Apply only if ``prev_seq`` is the seq you hold."""

    type: Literal["book_update"]
    channel: str
    symbol: str
    seq: int = Field(ge=1)
    prev_seq: int = Field(ge=0)
    bids: list[Level]
    asks: list[Level]
    node_seq: int = Field(ge=0)
    node_ts: int = Field(ge=0)


class Trade(_Message):
    type: Literal["trade"]
    channel: str
    symbol: str
    trade_id: int
    price: Price
    quantity: int = Field(gt=0)
    aggressor_side: Literal["BUY", "SELL"]
    node_seq: int = Field(ge=0)
    node_ts: int = Field(ge=0)


class OrderUpdate(_Message):
    """One step of one of the caller's orders."""

    type: Literal["order"]
    channel: Literal["orders"]
    event: Literal["accepted", "fill", "cancelled", "rejected", "replaced", "pending_approval"]
    account: str
    order_id: str | None = Field(description="None for a rejection before the order existed")
    client_order_id: str
    symbol: str
    side: Literal["BUY", "SELL"] | None = None
    quantity: int | None = Field(
        default=None, description="accepted/replaced: the order's; fill: this fill's"
    )
    price: Price | None = Field(default=None, description="accepted/replaced: the limit; fill: this fill's")
    cumulative_quantity: int | None = Field(default=None, description="fill: filled so far")
    average_price: str | None = Field(default=None, description="fill: average fill price so far")
    execution_id: str | None = None
    reason: str | None = Field(default=None, description="cancelled/rejected/pending_approval: why")
    message: str | None = None
    occurred_at: str
    node_seq: int | None = None


ServerMessage = Annotated[
    Welcome | Subscribed | Pong | Heartbeat | Error | BookSnapshot | BookUpdate | Trade | OrderUpdate,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[Any] = TypeAdapter(ServerMessage)
