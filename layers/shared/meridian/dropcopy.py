"""The drop-copy record as its consumers read it: a checked model of ``executions.drop_copy_record``.

One JSON object per trade, written by the matching node to the private executions stream (see
:mod:`meridian.executions`), many of one symbol to a Kinesis record in the KPL aggregation format
(:func:`parse_drop_copies` reads both). :func:`parse_drop_copy` accepts exactly version
``DROP_COPY_VERSION`` with exactly its fields (a new field means a new version, and consumers are
deployed before the nodes that write it), and checks what the record can check about itself: the
execution id is the trade id's, and each order id is derived from its account and client order id.
Anything else raises :class:`DropCopyError` with a one-line reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meridian.domain import ACCOUNT_LEN, CLIENT_ORDER_ID_LEN
from meridian.events import TradeExecuted
from meridian.executions import DROP_COPY_VERSION, execution_id, order_id_for
from meridian.kpl import AggregationError, user_records

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UINT64 = (1 << 64) - 1


class DropCopyError(ValueError):
    """A drop-copy record no retry can fix; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DropCopyRecord(BaseModel):
    """One trade as the node that made it recorded it (both sides, node ids, leaves quantities)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: int
    execution_id: str = Field(min_length=3, max_length=64)
    trade_id: int = Field(ge=1, le=_UINT64)
    seq: int = Field(ge=0)
    symbol: str = Field(min_length=1, max_length=32)
    price: Decimal = Field(gt=0, allow_inf_nan=False)
    price_ticks: int = Field(gt=0)
    quantity: int = Field(gt=0)
    aggressor_side: Literal["BUY", "SELL"]
    buy_order_id: str = Field(min_length=1)
    sell_order_id: str = Field(min_length=1)
    # Whatever the node accepted, the drop copy must carry: the wire allows empty ids, so they are
    # not refused here (a refused record would keep a trade the node made out of the ledger).
    buy_account: str = Field(max_length=ACCOUNT_LEN)
    sell_account: str = Field(max_length=ACCOUNT_LEN)
    buy_client_order_id: str = Field(max_length=CLIENT_ORDER_ID_LEN)
    sell_client_order_id: str = Field(max_length=CLIENT_ORDER_ID_LEN)
    buy_node_order_id: int = Field(ge=0)
    sell_node_order_id: int = Field(ge=0)
    buy_leaves_quantity: int = Field(ge=0)
    sell_leaves_quantity: int = Field(ge=0)
    timestamp_ns: int = Field(ge=0)

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != DROP_COPY_VERSION:
            raise ValueError(
                f"drop-copy version {v} is not supported (this consumer reads {DROP_COPY_VERSION})"
            )
        return v

    @field_validator("price", mode="before")
    @classmethod
    def _decimal_text(cls, price: Any) -> Decimal:
        if not isinstance(price, str):  # a JSON number may already have lost digits
            raise ValueError("price must be the decimal price as text")
        try:
            return Decimal(price)
        except ArithmeticError:
            raise ValueError(f"price {price!r} is not a decimal number") from None

    @model_validator(mode="after")
    def _consistent(self) -> DropCopyRecord:
        if self.execution_id != execution_id(self.trade_id):
            raise ValueError(f"execution_id {self.execution_id!r} is not trade {self.trade_id}'s")
        for side, account, client_order_id, order_id in (
            ("buy", self.buy_account, self.buy_client_order_id, self.buy_order_id),
            ("sell", self.sell_account, self.sell_client_order_id, self.sell_order_id),
        ):
            if order_id != order_id_for(account, client_order_id):
                raise ValueError(
                    f"{side}_order_id is not derived from {side}_account and {side}_client_order_id"
                )
        return self

    @property
    def occurred_at(self) -> datetime:
        """``timestamp_ns`` as a UTC time, truncated to the microsecond (exactly: no float)."""
        return _EPOCH + timedelta(microseconds=self.timestamp_ns // 1000)

    def trade_executed(self) -> TradeExecuted:
        """The ``trade.executed.v1`` event of this trade; its event id is the execution id."""
        return TradeExecuted(
            event_id=self.execution_id,
            occurred_at=self.occurred_at,
            execution_id=self.execution_id,
            symbol=self.symbol,
            price=self.price,
            quantity=self.quantity,
            aggressor_side=self.aggressor_side,
            buy_order_id=self.buy_order_id,
            sell_order_id=self.sell_order_id,
            buy_account=self.buy_account,
            sell_account=self.sell_account,
            buy_client_order_id=self.buy_client_order_id,
            sell_client_order_id=self.sell_client_order_id,
            node_seq=self.seq,
        )


def parse_drop_copies(data: bytes) -> list[DropCopyRecord]:
    """Every drop-copy record in one Kinesis record's data: one when it is plain, many when the
    node aggregated them (``meridian.kpl``); raises DropCopyError unless every one is valid."""
    try:
        parts = user_records(data)
    except AggregationError as exc:
        raise DropCopyError(exc.reason) from None
    return [parse_drop_copy(part) for part in parts]


def parse_drop_copy(data: bytes | str) -> DropCopyRecord:
    """One drop-copy record from its JSON; raises DropCopyError when it is not a valid one."""
    try:
        return DropCopyRecord.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        version = [e for e in errors if e["loc"] == ("v",)]
        if version and "error" in version[0].get("ctx", {}):
            raise DropCopyError(str(version[0]["ctx"]["error"])) from None
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        if first["type"] == "json_invalid":
            raise DropCopyError(f"drop-copy record is not JSON: {first['msg']}") from None
        count = exc.error_count()
        raise DropCopyError(
            f"drop-copy record failed its schema: {count} error(s), first at {where}: {first['msg']}"
        ) from None


__all__ = ["DropCopyError", "DropCopyRecord", "parse_drop_copies", "parse_drop_copy"]
