"""Wire protocol: round trips, exact layouts, and one error type for every malformed frame."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian import protocol as p
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

u64 = st.integers(min_value=0, max_value=2**64 - 1)
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
u8 = st.integers(min_value=0, max_value=255)


def text(width: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=width)


def enum_of(enum: type[object]) -> st.SearchStrategy[int]:
    return st.sampled_from([int(m) for m in enum])  # type: ignore[attr-defined]


sides, types, tifs = enum_of(Side), enum_of(OrderType), enum_of(TimeInForce)
sym, acct, clid = text(SYMBOL_LEN), text(ACCOUNT_LEN), text(CLIENT_ORDER_ID_LEN)

messages: st.SearchStrategy[p.Message] = st.one_of(
    st.builds(p.NewOrder, u64, clid, acct, sym, sides, types, tifs, u8, i64, i64),
    st.builds(p.Cancel, u64, acct, sym, u64),
    st.builds(p.Replace, u64, acct, sym, u64, i64, i64),
    st.builds(p.Heartbeat, u64, u64),
    st.builds(p.SnapshotRequest, u64, sym),
    st.builds(p.Admin, u64, sym, enum_of(p.AdminAction)),
    st.builds(p.Ack, u64, u64, u64, clid, acct, sym, sides, enum_of(OrderStatus), i64, i64, i64, i64),
    st.builds(p.Reject, u64, u64, u64, clid, sym, enum_of(RejectReason)),
    st.builds(p.Fill, u64, u64, u64, sym, i64, i64, sides, u64, u64, acct, acct, clid, clid, i64, i64),
    st.builds(p.CancelAck, u64, u64, u64, clid, acct, sym, enum_of(CancelReason), i64),
    st.builds(p.Snapshot, u64, u64, u64),
    st.builds(p.AdminAck, u64, u64, sym, enum_of(p.AdminAction)),
    st.builds(p.ProtocolReject, u64, enum_of(p.ProtocolRejectCode)),
)


@given(messages, st.integers(min_value=0, max_value=0xFFFF))
def test_every_message_round_trips(message: p.Message, flags: int) -> None:
    frame = p.encode(message, flags)
    decoded, decoded_flags, size = p.decode(frame)
    assert decoded == message
    assert type(decoded) is type(message)
    assert decoded_flags == flags
    assert size == len(frame) == p.FRAME_SIZES[p.message_type(message)]


@given(st.lists(messages, min_size=1, max_size=20), st.integers(min_value=0, max_value=200))
def test_stream_decoding_stops_at_a_partial_frame(batch: list[p.Message], cut: int) -> None:
    stream = b"".join(p.encode(m, p.Flag.LAST) for m in batch)
    partial = stream[: max(0, len(stream) - cut)]
    frames, consumed = p.decode_stream(partial)
    assert [m for m, _ in frames] == batch[: len(frames)]
    assert consumed == sum(len(p.encode(m)) for m in batch[: len(frames)])
    assert len(partial) - consumed < p.MAX_FRAME_SIZE


def test_header_layout_is_fixed_little_endian() -> None:
    frame = p.encode(p.Heartbeat(request_id=0x0102030405060708, timestamp_ns=9), p.Flag.LAST)
    length, version, mtype, flags, request_id = struct.unpack_from("<IBBHQ", frame)
    assert (length, version, mtype, flags) == (len(frame) - 4, 1, p.MessageType.HEARTBEAT, 1)
    assert request_id == 0x0102030405060708
    assert frame[16:] == struct.pack("<Q", 9)


NEW_ORDER = p.encode(p.NewOrder(1, "c-1", "ACC1", "AAPL", 1, 1, 1, 0, 100, 19000))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (NEW_ORDER[:3], "truncated"),
        (NEW_ORDER[:-1], "truncated"),
        (struct.pack("<I", 10_000) + NEW_ORDER[4:], "oversize"),
        (struct.pack("<I", 4) + NEW_ORDER[4:8], "bad_length"),
        (struct.pack("<I", len(NEW_ORDER) - 3) + NEW_ORDER[4:] + b"\0", "bad_length"),
        (NEW_ORDER[:4] + b"\x07" + NEW_ORDER[5:], "unsupported_version"),
        (NEW_ORDER[:5] + b"\x63" + NEW_ORDER[6:], "unknown_type"),
        (NEW_ORDER[:60] + b"\x09" + NEW_ORDER[61:], "bad_enum"),
        (NEW_ORDER[:16] + b"\xff" + NEW_ORDER[17:], "bad_field"),
        (NEW_ORDER[:16] + b"a\0b" + NEW_ORDER[19:], "bad_field"),
    ],
)
def test_malformed_frames_raise_protocol_error_with_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.decode(frame)
    assert err.value.reason == reason


def test_encoding_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(p.ProtocolError, match="bad_field"):
        p.encode(p.NewOrder(1, "c", "A", "TOOLONGSYM", 1, 1, 1, 0, 1, 1))
    with pytest.raises(p.ProtocolError, match="bad_field"):
        p.encode(p.Heartbeat(-1, 0))


def _mutations(rng: random.Random, frames: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return rng.randbytes(rng.randrange(0, 80))
    frame = bytearray(rng.choice(frames))
    if choice < 0.5:
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
    elif choice < 0.65:
        del frame[rng.randrange(len(frame)) :]
    elif choice < 0.8:
        frame[0:4] = struct.pack("<I", rng.choice([0, 1, 11, 12, len(frame), 2**31, rng.randrange(2**32)]))
    else:
        frame += rng.randbytes(rng.randrange(1, 40))
    return bytes(frame)


@pytest.mark.slow
def test_fuzzed_frames_only_ever_raise_protocol_error() -> None:
    rng = random.Random(20261125)
    samples = [
        NEW_ORDER,
        p.encode(p.Cancel(2, "ACC1", "AAPL", 5)),
        p.encode(p.Replace(3, "ACC1", "AAPL", 5, 10, 100)),
        p.encode(p.Fill(4, 1, 1, "AAPL", 1, 1, 1, 1, 2, "A", "B", "x", "y", 0, 0)),
        p.encode(p.Ack(5, 1, 1, "c", "A", "AAPL", 1, 1, 1, 1, 0, 1)),
        p.encode(p.Admin(6, "", p.AdminAction.HALT)),
    ]
    decoded = rejected = 0
    reasons: set[str] = set()
    for _ in range(120_000):
        data = _mutations(rng, samples)
        try:
            p.decode(data)
            p.decode_stream(data)
        except p.ProtocolError as exc:
            reasons.add(exc.reason)
            rejected += 1
        else:
            decoded += 1
    # Both outcomes must occur, or the mutations are not exercising the decoder.
    assert rejected > 50_000
    assert decoded > 1_000
    assert {"truncated", "oversize", "bad_length", "unknown_type", "bad_enum"} <= reasons
