"""Binary wire protocol between the Lambdas and the matching node.

Every frame is length-prefixed and fixed-layout, little-endian::

    u32 length          bytes that follow this field (header rest + body)
    u8  version         PROTOCOL_VERSION
    u8  type            MessageType
    u16 flags           Flag bits (LAST marks the final frame answering a request)
    u64 request_id      chosen by the client, echoed on every frame of the answer
    ... body            fixed layout per type (see ``_LAYOUTS``)

Decoding reads straight out of the caller's buffer (``struct.unpack_from`` on a memoryview), so a
stream of frames is parsed without slicing copies. Any malformed input raises ``ProtocolError``
and nothing else.
"""

from __future__ import annotations

import re
import struct
from enum import IntEnum, IntFlag
from typing import Any, NamedTuple

from meridian.domain import (
    ACCOUNT_LEN,
    CLIENT_ORDER_ID_LEN,
    SYMBOL_LEN,
    CancelReason,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<IBBHQ")
HEADER_SIZE = HEADER.size  # 16
_LENGTH = struct.Struct("<I")
LENGTH_SIZE = 4
MAX_FRAME_SIZE = 512


class ProtocolError(Exception):
    """A frame that cannot be decoded; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MessageType(IntEnum):
    NEW_ORDER = 1
    CANCEL = 2
    REPLACE = 3
    HEARTBEAT = 4
    SNAPSHOT_REQUEST = 5
    ADMIN = 6
    NEW_STOP_ORDER = 7
    LOGON = 8
    BOOK_EXPORT = 9
    ACK = 20
    REJECT = 21
    FILL = 22
    CANCEL_ACK = 23
    SNAPSHOT = 24
    ADMIN_ACK = 25
    PROTOCOL_REJECT = 26
    LOGON_CHALLENGE = 27
    LOGON_ACK = 28
    RESTING_ORDER = 29
    BOOK_EXPORTED = 30


class Flag(IntFlag):
    NONE = 0
    LAST = 1
    DUPLICATE = 2
    REPLACED = 4


class AdminAction(IntEnum):
    HALT = 1
    RESUME = 2
    END_OF_DAY = 3


class ProtocolRejectCode(IntEnum):
    MALFORMED = 1
    UNSUPPORTED_VERSION = 2
    UNKNOWN_TYPE = 3
    BAD_LENGTH = 4
    BAD_FIELD = 5
    NOT_A_REQUEST = 6
    # The connection's own conduct (the node closes it after this reject; request_id is 0).
    IDLE_TIMEOUT = 7  # nothing received, not even a heartbeat, for the node's idle timeout
    PARTIAL_FRAME_TIMEOUT = 8  # the start of a frame whose rest did not arrive in time
    TOO_MANY_CONNECTIONS = 9  # the node is at its connection cap
    SNAPSHOT_RATE_LIMITED = 10  # a SNAPSHOT_REQUEST sooner than the node allows one per connection
    # The session logon (``meridian.session_auth``).
    NOT_LOGGED_ON = 11  # the first frame on a connection was not a LOGON
    LOGON_FAILED = 12  # unknown key id or a wrong HMAC
    NOT_PERMITTED = 13  # a frame the session's role may not send (admin frames without admin)
    WRONG_ACCOUNT = 14  # an order, cancel or replace for an account other than the session's


class SessionRole(IntEnum):
    ORDERS = 1  # trading for any account (the order API, the order flow)
    ADMIN = 2  # HALT / RESUME / END_OF_DAY, SNAPSHOT_REQUEST, BOOK_EXPORT (runbooks, operators)
    ACCOUNT = 3  # trading for one account only


ORDER_FLAG_POST_ONLY = 0x01
ORDER_FLAG_STP_SHIFT = 1
ORDER_FLAG_STP_MASK = 0x06


# ---- messages: request_id first, then the body fields in wire order -------------------------


class NewOrder(NamedTuple):
    request_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    quantity: int
    price: int


class NewStopOrder(NamedTuple):
    """A stop (``order_type`` MARKET) or stop-limit (LIMIT, at ``price``) order: it waits in the node
    until a trade in its symbol reaches ``stop_price`` (at or above it for a buy, at or below for a
    sell), then works as the market or limit order it names (``reference.py`` has the rules)."""

    request_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    quantity: int
    price: int
    stop_price: int


class Cancel(NamedTuple):
    request_id: int
    account: str
    symbol: str
    order_id: int


class Replace(NamedTuple):
    request_id: int
    account: str
    symbol: str
    order_id: int
    quantity: int
    price: int


class Heartbeat(NamedTuple):
    request_id: int
    timestamp_ns: int


class SnapshotRequest(NamedTuple):
    request_id: int
    symbol: str


class Admin(NamedTuple):
    request_id: int
    symbol: str
    action: int


class BookExport(NamedTuple):
    """Every order of a halted ``symbol`` still working on the node (an admin request, the first
    step of moving the symbol to another shard): answered with one ``RestingOrder`` per order, in
    priority order, then ``BookExported``; refused with ``Reject(SYMBOL_NOT_HALTED)`` while the
    symbol trades (its book would change under the copy)."""

    request_id: int
    symbol: str


class Logon(NamedTuple):
    """A connection's first frame when the node asks for a logon: ``mac`` is the lowercase hex of
    HMAC-SHA256(key, nonce || key_id) over the challenge's nonce bytes (``meridian.session_auth``)."""

    request_id: int
    key_id: str
    mac: str


class LogonChallenge(NamedTuple):
    """The node's first frame on a connection: a fresh random nonce (lowercase hex, 32 bytes)."""

    request_id: int
    nonce: str


class LogonAck(NamedTuple):
    """The node accepted the logon: what the session may do (``account`` empty: any account)."""

    request_id: int
    role: int
    account: str


class Ack(NamedTuple):
    request_id: int
    seq: int
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    status: int
    quantity: int
    leaves_quantity: int
    filled_quantity: int
    price: int


class Reject(NamedTuple):
    request_id: int
    seq: int
    order_id: int
    client_order_id: str
    symbol: str
    reason: int


class Fill(NamedTuple):
    """One trade, both sides: the aggressor's and the resting order's."""

    request_id: int
    seq: int
    trade_id: int
    symbol: str
    price: int
    quantity: int
    aggressor_side: int
    buy_order_id: int
    sell_order_id: int
    buy_account: str
    sell_account: str
    buy_client_order_id: str
    sell_client_order_id: str
    buy_leaves_quantity: int
    sell_leaves_quantity: int


class CancelAck(NamedTuple):
    request_id: int
    seq: int
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    reason: int
    cancelled_quantity: int


class Snapshot(NamedTuple):
    request_id: int
    seq: int
    checksum: int


class AdminAck(NamedTuple):
    request_id: int
    seq: int
    symbol: str
    action: int


class RestingOrder(NamedTuple):
    """One order of a ``BookExport`` answer as the node holds it at the answer's ``seq``: resting
    orders (bids best first, then asks, time priority within a price), then waiting stop orders in
    trigger order (``stop_price`` > 0)."""

    request_id: int
    seq: int
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    order_flags: int
    leaves_quantity: int
    price: int
    stop_price: int


class BookExported(NamedTuple):
    """The end of a ``BookExport`` answer: how many ``RestingOrder`` frames came before it and the
    symbol's book checksum at ``seq``."""

    request_id: int
    seq: int
    symbol: str
    orders: int
    checksum: int


class ProtocolReject(NamedTuple):
    request_id: int
    code: int


Message = (
    NewOrder
    | NewStopOrder
    | Cancel
    | Replace
    | Heartbeat
    | SnapshotRequest
    | Admin
    | BookExport
    | Ack
    | Reject
    | Fill
    | CancelAck
    | Snapshot
    | AdminAck
    | ProtocolReject
    | Logon
    | LogonChallenge
    | LogonAck
    | RestingOrder
    | BookExported
)
REQUEST_TYPES = (NewOrder, NewStopOrder, Cancel, Replace, Heartbeat, SnapshotRequest, Admin, BookExport)

_S, _A, _C = f"{SYMBOL_LEN}s", f"{ACCOUNT_LEN}s", f"{CLIENT_ORDER_ID_LEN}s"


def _members(enum: type[IntEnum]) -> frozenset[int]:
    return frozenset(int(m) for m in enum)


_SIDES, _TYPES, _TIFS = _members(Side), _members(OrderType), _members(TimeInForce)
_STATUSES, _REJECTS = _members(OrderStatus), _members(RejectReason)
_CANCELS, _ACTIONS, _PREJECTS = _members(CancelReason), _members(AdminAction), _members(ProtocolRejectCode)
_ROLES = _members(SessionRole)


class _Layout(NamedTuple):
    cls: Any
    mtype: int
    body: struct.Struct
    frame: struct.Struct  # header and body in one struct: one pack/unpack per frame
    strings: tuple[tuple[int, int], ...]  # (index in the message, width in bytes)
    enums: tuple[tuple[int, frozenset[int]], ...]  # (index in the message, allowed values)


_FIELD_CODE = re.compile(r"(\d*)([a-wyzA-Z?])")  # every struct code except pad bytes "x"


def _layout(cls: Any, mtype: int, fmt: str, enums: tuple[tuple[str, frozenset[int]], ...] = ()) -> _Layout:
    codes = _FIELD_CODE.findall(re.sub(r"\d*x", "", fmt))
    if len(codes) != len(cls._fields) - 1:
        raise AssertionError(f"layout of {cls.__name__} does not match its fields")
    strings = tuple((i + 1, int(width)) for i, (width, code) in enumerate(codes) if code == "s")
    index = {name: i for i, name in enumerate(cls._fields)}
    return _Layout(
        cls,
        mtype,
        struct.Struct("<" + fmt),
        struct.Struct(HEADER.format + fmt),
        strings,
        tuple((index[n], allowed) for n, allowed in enums),
    )


_LAYOUTS: dict[int, _Layout] = {
    MessageType.NEW_ORDER: _layout(
        NewOrder,
        MessageType.NEW_ORDER,
        f"{_C}{_A}{_S}BBBBqq",
        (("side", _SIDES), ("order_type", _TYPES), ("time_in_force", _TIFS)),
    ),
    MessageType.NEW_STOP_ORDER: _layout(
        NewStopOrder,
        MessageType.NEW_STOP_ORDER,
        f"{_C}{_A}{_S}BBBBqqq",
        (("side", _SIDES), ("order_type", _TYPES), ("time_in_force", _TIFS)),
    ),
    MessageType.CANCEL: _layout(Cancel, MessageType.CANCEL, f"{_A}{_S}Q"),
    MessageType.REPLACE: _layout(Replace, MessageType.REPLACE, f"{_A}{_S}Qqq"),
    MessageType.HEARTBEAT: _layout(Heartbeat, MessageType.HEARTBEAT, "Q"),
    MessageType.SNAPSHOT_REQUEST: _layout(SnapshotRequest, MessageType.SNAPSHOT_REQUEST, _S),
    MessageType.ADMIN: _layout(Admin, MessageType.ADMIN, f"{_S}B7x", (("action", _ACTIONS),)),
    MessageType.BOOK_EXPORT: _layout(BookExport, MessageType.BOOK_EXPORT, _S),
    MessageType.ACK: _layout(
        Ack,
        MessageType.ACK,
        f"QQ{_C}{_A}{_S}BB6xqqqq",
        (("side", _SIDES), ("status", _STATUSES)),
    ),
    MessageType.REJECT: _layout(Reject, MessageType.REJECT, f"QQ{_C}{_S}H6x", (("reason", _REJECTS),)),
    MessageType.FILL: _layout(
        Fill,
        MessageType.FILL,
        f"QQ{_S}qqB7xQQ{_A}{_A}{_C}{_C}qq",
        (("aggressor_side", _SIDES),),
    ),
    MessageType.CANCEL_ACK: _layout(
        CancelAck,
        MessageType.CANCEL_ACK,
        f"QQ{_C}{_A}{_S}B7xq",
        (("reason", _CANCELS),),
    ),
    MessageType.SNAPSHOT: _layout(Snapshot, MessageType.SNAPSHOT, "QQ"),
    MessageType.ADMIN_ACK: _layout(AdminAck, MessageType.ADMIN_ACK, f"Q{_S}B7x", (("action", _ACTIONS),)),
    MessageType.PROTOCOL_REJECT: _layout(
        ProtocolReject, MessageType.PROTOCOL_REJECT, "H6x", (("code", _PREJECTS),)
    ),
    MessageType.LOGON: _layout(Logon, MessageType.LOGON, "32s64s"),
    MessageType.LOGON_CHALLENGE: _layout(LogonChallenge, MessageType.LOGON_CHALLENGE, "64s"),
    MessageType.LOGON_ACK: _layout(LogonAck, MessageType.LOGON_ACK, f"B7x{_A}", (("role", _ROLES),)),
    MessageType.RESTING_ORDER: _layout(
        RestingOrder,
        MessageType.RESTING_ORDER,
        f"QQ{_C}{_A}{_S}BBBB4xqqq",
        (("side", _SIDES), ("order_type", _TYPES), ("time_in_force", _TIFS)),
    ),
    MessageType.BOOK_EXPORTED: _layout(BookExported, MessageType.BOOK_EXPORTED, f"Q{_S}QQ"),
}
_BY_CLASS: dict[type, _Layout] = {layout.cls: layout for layout in _LAYOUTS.values()}
_TYPE_OF: dict[type, int] = {layout.cls: t for t, layout in _LAYOUTS.items()}
FRAME_SIZES: dict[int, int] = {t: lay.frame.size for t, lay in _LAYOUTS.items()}


def message_type(message: Message) -> int:
    return _TYPE_OF[type(message)]


def encode(message: Message, flags: int = 0) -> bytes:
    """Encode one message into a complete frame."""
    layout = _BY_CLASS.get(type(message))
    if layout is None:
        raise ProtocolError("unknown_type", type(message).__name__)
    length = layout.frame.size - LENGTH_SIZE
    try:
        if not layout.strings:
            return layout.frame.pack(length, PROTOCOL_VERSION, layout.mtype, flags, *message)
        values: list[Any] = list(message)
        for i, width in layout.strings:
            raw = values[i].encode("ascii")
            if len(raw) > width or b"\0" in raw:
                raise ProtocolError("bad_field", f"string {values[i]!r} does not fit {width} bytes")
            values[i] = raw
        return layout.frame.pack(length, PROTOCOL_VERSION, layout.mtype, flags, *values)
    except (struct.error, UnicodeEncodeError, AttributeError) as exc:
        raise ProtocolError("bad_field", str(exc)) from None


def frame_length(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Total size of the frame starting at ``offset`` (validated against the maximum)."""
    if len(buf) - offset < LENGTH_SIZE:
        raise ProtocolError("truncated", "shorter than the length prefix")
    length: int = _LENGTH.unpack_from(buf, offset)[0]
    total = length + LENGTH_SIZE
    if total > MAX_FRAME_SIZE:
        raise ProtocolError("oversize", f"{total} bytes > {MAX_FRAME_SIZE}")
    if total < HEADER_SIZE:
        raise ProtocolError("bad_length", f"{total} bytes is shorter than a header")
    return total


def decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Message, int, int]:
    """Decode the frame at ``offset``; return ``(message, flags, frame_size)``."""
    total = frame_length(buf, offset)
    if len(buf) - offset < total:
        raise ProtocolError("truncated", f"need {total} bytes, have {len(buf) - offset}")
    if buf[offset + 4] != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_version", str(buf[offset + 4]))
    mtype = buf[offset + 5]
    layout = _LAYOUTS.get(mtype)
    if layout is None:
        raise ProtocolError("unknown_type", str(mtype))
    if total != layout.frame.size:
        raise ProtocolError("bad_length", f"type {mtype} is {layout.frame.size} bytes, got {total}")
    values: Any = layout.frame.unpack_from(buf, offset)
    flags: int = values[3]
    fields = values[4:]
    if layout.strings:
        fields = list(fields)
        for i, _ in layout.strings:
            text = fields[i].rstrip(b"\0")
            if b"\0" in text:
                raise ProtocolError("bad_field", "embedded NUL in string field")
            try:
                fields[i] = text.decode("ascii")
            except UnicodeDecodeError:
                raise ProtocolError("bad_field", "non-ASCII string field") from None
    for i, allowed in layout.enums:
        if fields[i] not in allowed:
            raise ProtocolError("bad_enum", f"{layout.cls._fields[i]}={fields[i]}")
    return layout.cls._make(fields), flags, total


def decode_stream(buf: bytes | bytearray | memoryview) -> tuple[list[tuple[Message, int]], int]:
    """Decode every complete frame in ``buf``; return them and the number of bytes consumed."""
    view = memoryview(buf)
    frames: list[tuple[Message, int]] = []
    offset = 0
    end = len(view)
    while end - offset >= LENGTH_SIZE:
        total = frame_length(view, offset)
        if end - offset < total:
            break
        message, flags, _ = decode(view, offset)
        frames.append((message, flags))
        offset += total
    return frames, offset
