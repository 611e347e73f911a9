"""The native core's frame path (``feed``) against the Python protocol and the reference engine.

* Any bytes: ``feed`` never crashes, and where it stops and why is what ``meridian.protocol``'s
  decoder and the node's rules say (a protocol reject with the same code, a snapshot request, or an
  incomplete frame left for later).
* Valid request streams: ``feed`` answers byte for byte what the reference engine answers, frame
  by frame, in batches of any size, and its journal records replay into the same state.

``make bench-fuzz`` runs the malformed-frame fuzz for longer (``BENCH_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import google_crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meridian.protocol import (
    FRAME_SIZES,
    HEADER,
    REQUEST_TYPES,
    Admin,
    BookExport,
    Flag,
    Heartbeat,
    Message,
    MessageType,
    ProtocolError,
    ProtocolRejectCode,
    SnapshotRequest,
    decode,
    encode,
    frame_length,
)
from meridian_hotpath.engine import MatchingEngine, ReferenceEngine
from meridian_hotpath.engine.native import (
    FEED_BOOK_EXPORT,
    FEED_DONE,
    FEED_PROTOCOL_ERROR,
    FEED_SNAPSHOT_REQUEST,
    crc32c,
    crc32c_software,
)
from tests.unit.engine.engine_streams import INSTRUMENTS, Request, concretize, request_streams

FUZZ_EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "300"))
_REJECT_CODES = {
    "oversize": ProtocolRejectCode.BAD_LENGTH,
    "bad_length": ProtocolRejectCode.BAD_LENGTH,
    "unsupported_version": ProtocolRejectCode.UNSUPPORTED_VERSION,
    "unknown_type": ProtocolRejectCode.UNKNOWN_TYPE,
    "bad_field": ProtocolRejectCode.BAD_FIELD,
    "bad_enum": ProtocolRejectCode.BAD_FIELD,
}


def expected_stop(data: bytes) -> tuple[int, int, int | str | None, int]:
    """What the node must do with ``data``, by the Python decoder: (stop, offset, detail, request id)
    after the frames before the first that is incomplete, refused, a snapshot request or a book export."""
    offset = 0
    while len(data) - offset >= 4:
        try:
            total = frame_length(data, offset)
            if len(data) - offset < total:
                return FEED_DONE, offset, None, 0
            message, _, _ = decode(data, offset)
        except ProtocolError as error:
            request_id = HEADER.unpack_from(data, offset)[4] if len(data) - offset >= 16 else 0
            return FEED_PROTOCOL_ERROR, offset, _REJECT_CODES.get(error.reason, 1), request_id
        if not isinstance(message, REQUEST_TYPES):
            return FEED_PROTOCOL_ERROR, offset, ProtocolRejectCode.NOT_A_REQUEST, message.request_id
        if isinstance(message, SnapshotRequest):
            return FEED_SNAPSHOT_REQUEST, offset + total, message.symbol, message.request_id
        if isinstance(message, BookExport):  # answered by the node, like a snapshot request
            return FEED_BOOK_EXPORT, offset + total, message.symbol, message.request_id
        offset += total
    return FEED_DONE, offset, None, 0


def _frame_bytes(mtype: int, body: bytes, version: int = 1, length_delta: int = 0) -> bytes:
    size = FRAME_SIZES.get(mtype, 16 + len(body))
    body = (body + b"\0" * size)[: size - 16]
    return struct.pack("<IBBHQ", max(0, size - 4 + length_delta), version, mtype, 0, 7) + body


_field_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"AAA", b"AAA\0B", b"\xffAA", b"ACC1", b"C1", b"", b"\0\0AAA"]),
)
_mangled_frames = st.builds(
    _frame_bytes,
    st.sampled_from([*map(int, MessageType), 0, 7, 99, 255]),
    st.builds(lambda parts: b"".join(parts), st.lists(_field_bytes, max_size=6)),
    st.sampled_from([1, 1, 1, 1, 0, 2]),
    st.sampled_from([0, 0, 0, 0, -1, 1, 600, -20]),
)
_chunks = st.lists(st.one_of(_mangled_frames, st.binary(max_size=24)), min_size=1, max_size=8)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_chunks)
def test_any_bytes_stop_where_and_why_the_protocol_says(parts: list[bytes]) -> None:
    data = b"".join(parts)
    engine = MatchingEngine(INSTRUMENTS)
    offset, _held, _immediate, changes, stop, request_id, detail = engine.feed(data)
    want_stop, want_offset, want_detail, want_request_id = expected_stop(data)
    assert (stop, offset) == (want_stop, want_offset)
    if stop != FEED_DONE:
        assert (detail, request_id) == (want_detail, want_request_id)
    assert changes == engine.seq
    journal = engine.take_journal()
    assert MatchingEngine(INSTRUMENTS).replay(journal)[1] == changes  # one record per change
    assert MatchingEngine.restore(engine.snapshot()).checksum() == engine.checksum()


def _frames(requests: Sequence[Message]) -> list[bytes]:
    return [encode(request) for request in requests]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_streams(), st.integers(1, 12))
def test_feeding_frames_answers_as_the_reference_engine_in_batches_of_any_size(
    raw: list[Request], batch: int
) -> None:
    # The wire refuses an admin action it does not know (a protocol reject, tested above).
    stream = [r for r in concretize(raw) if not (isinstance(r, Admin) and r.action not in (1, 2, 3))]
    engine, reference = MatchingEngine(INSTRUMENTS), ReferenceEngine(INSTRUMENTS)
    frames = _frames(stream)
    expected = b""
    for request in stream:
        answer = reference.process(request)
        flags = reference.last_flags
        expected += b"".join(
            encode(message, flags | (Flag.LAST if i == len(answer) - 1 else 0))
            for i, message in enumerate(answer)
        )
    got = b""
    journal = b""
    for start in range(0, len(frames), batch):
        chunk = b"".join(frames[start : start + batch])
        offset, held, immediate, changes, stop, _, _ = engine.feed(chunk)
        assert (offset, stop, immediate) == (len(chunk), FEED_DONE, b"")
        assert changes == len(frames[start : start + batch])
        got += held
        journal += engine.take_journal()
    assert got == expected
    assert engine.checksum() == reference.checksum()
    # The journal records are the frames, numbered, with their CRC32C; they replay to the same state.
    at, seq = 0, 1
    for frame in frames:
        length, record_seq = struct.unpack_from("<IQ", journal, at)
        assert (length, record_seq) == (len(frame), seq)
        assert journal[at + 12 : at + 12 + length] == frame
        (crc,) = struct.unpack_from("<I", journal, at + 12 + length)
        assert crc == google_crc32c.value(journal[at : at + 12 + length])
        at, seq = at + 16 + length, seq + 1
    assert at == len(journal)
    replayed = MatchingEngine(INSTRUMENTS)
    end, applied, defect, _, last = replayed.replay(journal)
    assert (end, applied, defect, last) == (len(journal), len(frames), None, len(frames))
    assert replayed.checksum() == engine.checksum()


def test_heartbeats_are_answered_at_once_with_the_last_flag_and_journal_nothing() -> None:
    engine = MatchingEngine(INSTRUMENTS)
    beat = encode(Heartbeat(42, 123456), 0)
    _, held, immediate, changes, stop, _, _ = engine.feed(beat + beat)
    assert (held, changes, stop) == (b"", 0, FEED_DONE)
    assert immediate == encode(Heartbeat(42, 123456), Flag.LAST) * 2
    assert engine.take_journal() == b""


@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc32c_is_google_crc32c_in_hardware_and_in_software(data: bytes, start: int) -> None:
    assert crc32c(data) == crc32c_software(data) == google_crc32c.value(data)
    assert crc32c(data, start) == crc32c_software(data, start) == google_crc32c.extend(start, data)


def test_feed_reads_bytes_bytearray_and_memoryview_alike() -> None:
    frames = b"".join(
        encode(request)
        for request in (
            Heartbeat(1, 0),
            Admin(2, "AAA", 2),
            Admin(3, "ZZZ", 1),
        )
    )
    answers = []
    for kind in (bytes, bytearray, memoryview):
        engine = MatchingEngine(INSTRUMENTS)
        answers.append((engine.feed(kind(frames), 0), engine.take_journal(), engine.feed(kind(b""), 0)))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0][3] == 2  # the two admin requests changed state; the heartbeat was answered
