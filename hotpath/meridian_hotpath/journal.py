"""Append-only journal of every state-changing input, the node's source of truth.

A journal is a directory of segment files ``journal-<first seq>.log``. Each record is::

    u32 frame_length | u64 seq | frame (the request's wire frame) | u32 crc32c(length, seq, frame)

Records are appended in batches (group commit): the server buffers the records of the inputs that
arrived together, writes them with one ``write`` and makes them durable with one ``fdatasync``
before any answer leaves the node. Segments rotate at batch boundaries, so a record never spans
two files and every segment but the last is complete.

A crash can leave a torn record at the end of the last segment: it was never acknowledged, so it
is reported and cut off when the node opens the journal. A bad record anywhere else (an earlier
segment, or one followed by valid records) means durable data was damaged: reading stops with
``JournalCorruptError`` naming the sequence number, and the node refuses to start.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from meridian.protocol import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    Admin,
    Cancel,
    NewOrder,
    ProtocolError,
    Replace,
    decode,
)

RECORD_HEADER = struct.Struct("<IQ")
RECORD_CRC = struct.Struct("<I")
RECORD_OVERHEAD = RECORD_HEADER.size + RECORD_CRC.size
SEGMENT_PREFIX = "journal-"
SEGMENT_SUFFIX = ".log"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

StateChange = NewOrder | Cancel | Replace | Admin
STATE_CHANGE_TYPES = (NewOrder, Cancel, Replace, Admin)


class JournalCorruptError(Exception):
    """Durable journal data is damaged; recovery must not guess past it."""

    def __init__(self, segment: Path, offset: int, seq: int, reason: str) -> None:
        super().__init__(f"journal corrupt at seq {seq} ({segment.name} offset {offset}): {reason}")
        self.segment = segment
        self.offset = offset
        self.seq = seq
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JournalRecord:
    seq: int
    frame: bytes

    def request(self) -> StateChange:
        message, _, _ = decode(self.frame)
        if not isinstance(message, STATE_CHANGE_TYPES):
            raise ProtocolError("not_a_state_change", type(message).__name__)
        return message


@dataclass(frozen=True, slots=True)
class TornTail:
    """An incomplete or damaged record at the very end of the journal (a crash mid-write)."""

    segment: Path
    offset: int
    dropped_bytes: int
    last_good_seq: int
    reason: str

    def describe(self) -> str:
        return (
            f"torn tail after seq {self.last_good_seq}: {self.dropped_bytes} bytes at "
            f"{self.segment.name} offset {self.offset} ({self.reason})"
        )


def encode_record(seq: int, frame: bytes) -> bytes:
    header = RECORD_HEADER.pack(len(frame), seq)
    crc = google_crc32c.extend(google_crc32c.value(header), frame)
    return header + frame + RECORD_CRC.pack(crc)


def _record_at(data: bytes, offset: int) -> tuple[int, int, str | None]:
    """Parse the record at ``offset``: ``(seq, end offset, None)`` or ``(0, 0, defect)``."""
    if len(data) - offset < RECORD_HEADER.size:
        return 0, 0, "truncated header"
    length, seq = RECORD_HEADER.unpack_from(data, offset)
    if not HEADER_SIZE <= length <= MAX_FRAME_SIZE:
        return 0, 0, f"implausible frame length {length}"
    end = offset + RECORD_HEADER.size + length + RECORD_CRC.size
    if end > len(data):
        return 0, 0, "truncated record"
    (stored,) = RECORD_CRC.unpack_from(data, end - RECORD_CRC.size)
    if google_crc32c.value(data[offset : end - RECORD_CRC.size]) != stored:
        return 0, 0, "crc mismatch"
    return seq, end, None


def _valid_record_follows(data: bytes, offset: int) -> bool:
    """Whether any intact record starts after ``offset``: tells a torn tail from damage mid-file.

    Only runs when a defect was found, over the bytes after it (a few records for a torn tail).
    """
    return any(_record_at(data, start)[2] is None for start in range(offset + 1, len(data)))


@dataclass(frozen=True, slots=True)
class SegmentScan:
    records: list[JournalRecord]
    good_end: int  # offset just after the last intact record
    defect: str | None  # why parsing stopped before the end of the file, if it did


def scan_segment(path: Path, first_seq: int) -> SegmentScan:
    """Parse a segment whose first record must carry ``first_seq``; stop at the first defect."""
    data = path.read_bytes()
    records: list[JournalRecord] = []
    offset, expected = 0, first_seq
    while offset < len(data):
        seq, end, defect = _record_at(data, offset)
        if defect is None and seq != expected:
            raise JournalCorruptError(path, offset, expected, f"intact record carries seq {seq}")
        if defect is not None:
            if _valid_record_follows(data, offset):
                raise JournalCorruptError(path, offset, expected, f"{defect} before intact records")
            return SegmentScan(records, offset, defect)
        frame = data[offset + RECORD_HEADER.size : end - RECORD_CRC.size]
        record = JournalRecord(seq, frame)
        try:
            record.request()
        except ProtocolError as exc:
            raise JournalCorruptError(path, offset, seq, f"intact record holds a bad frame: {exc}") from None
        records.append(record)
        offset, expected = end, expected + 1
    return SegmentScan(records, offset, None)


def segment_first_seq(path: Path) -> int:
    return int(path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)])


def segment_paths(directory: Path) -> list[Path]:
    paths = [p for p in directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}") if p.is_file()]
    return sorted(paths, key=segment_first_seq)


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:020d}{SEGMENT_SUFFIX}"


def fsync_directory(directory: Path) -> None:
    """Make a file creation, rename or truncation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class JournalScan:
    """Everything read from a journal directory."""

    first_seq: int  # seq of the first record the journal holds (1 unless old segments were pruned)
    last_seq: int  # seq of the last intact record (first_seq - 1 when empty)
    torn_tail: TornTail | None


def read_journal(
    directory: Path, after_seq: int = 0, scan: JournalScan | None = None
) -> Iterator[JournalRecord]:
    """Yield intact records with seq > ``after_seq`` in order; fill ``scan`` as a side result.

    Raises ``JournalCorruptError`` on damage that is not a torn tail of the last segment, and on a
    gap between segments.
    """
    paths = segment_paths(directory)
    expected = segment_first_seq(paths[0]) if paths else after_seq + 1
    if scan is not None:
        scan.first_seq, scan.last_seq, scan.torn_tail = expected, expected - 1, None
    for index, path in enumerate(paths):
        first = segment_first_seq(path)
        if first != expected:
            raise JournalCorruptError(
                path, 0, expected, f"segment starts at seq {first}, expected {expected}"
            )
        next_first = segment_first_seq(paths[index + 1]) if index + 1 < len(paths) else None
        if next_first is not None and next_first <= after_seq:
            expected = next_first  # the whole segment is older than what the caller needs
            continue
        result = scan_segment(path, first)
        if result.defect is not None and next_first is not None:
            raise JournalCorruptError(path, result.good_end, first + len(result.records), result.defect)
        for record in result.records:
            if record.seq > after_seq:
                yield record
        expected = first + len(result.records)
        if scan is not None:
            scan.last_seq = expected - 1
            if result.defect is not None:
                dropped = path.stat().st_size - result.good_end
                scan.torn_tail = TornTail(path, result.good_end, dropped, expected - 1, result.defect)


def truncate_torn_tail(tail: TornTail) -> None:
    with open(tail.segment, "r+b") as handle:
        handle.truncate(tail.offset)
        os.fsync(handle.fileno())
    fsync_directory(tail.segment.parent)


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """Records taken out of the writer's buffer, ready for one write and one fdatasync."""

    data: bytes
    first_seq: int
    last_seq: int

    @property
    def records(self) -> int:
        return self.last_seq - self.first_seq + 1


class JournalWriter:
    """Appends records in batches; a batch becomes durable with a single write and fdatasync.

    ``append`` and ``seal`` run on the caller's thread; ``write`` may run on another (the node's
    journal thread), one batch at a time and in seal order. ``commit`` does both in one go.
    """

    def __init__(
        self,
        directory: Path,
        next_seq: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        on_sync: Callable[[float, int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.next_seq = next_seq
        self.segment_bytes = segment_bytes
        self._on_sync = on_sync  # (seconds spent in fdatasync, records in the batch)
        self._buffer = bytearray()
        self._pending = 0
        self._durable_seq = next_seq - 1
        directory.mkdir(parents=True, exist_ok=True)
        paths = segment_paths(directory)
        self._fd = -1
        self._size = 0
        if paths:
            self._open_segment(paths[-1])
        else:
            self._start_segment(next_seq)

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    def append(self, seq: int, frame: bytes) -> None:
        if seq != self.next_seq:
            raise ValueError(f"journal expects seq {self.next_seq}, got {seq}")
        self._buffer += encode_record(seq, frame)
        self._pending += 1
        self.next_seq += 1

    def seal(self) -> SealedBatch | None:
        """Take the buffered records as a batch (None when there are none)."""
        if not self._pending:
            return None
        batch = SealedBatch(bytes(self._buffer), self.next_seq - self._pending, self.next_seq - 1)
        self._buffer.clear()
        self._pending = 0
        return batch

    def write(self, batch: SealedBatch) -> float:
        """Write ``batch`` and fdatasync it; return the seconds the fdatasync took."""
        if self._size >= self.segment_bytes:
            self._rotate(batch.first_seq)
        view = memoryview(batch.data)
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])
        started = time.perf_counter()
        os.fdatasync(self._fd)
        elapsed = time.perf_counter() - started
        self._size += len(batch.data)
        self._durable_seq = batch.last_seq
        return elapsed

    def commit(self) -> int:
        """Seal and write the pending records on this thread; return how many there were."""
        batch = self.seal()
        if batch is None:
            return 0
        elapsed = self.write(batch)
        if self._on_sync is not None:
            self._on_sync(elapsed, batch.records)
        return batch.records

    def close(self) -> None:
        if self._fd >= 0:
            self.commit()
            os.close(self._fd)
            self._fd = -1

    def _open_segment(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    def _start_segment(self, first_seq: int) -> None:
        path = self.directory / segment_name(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o640)
        self._size = 0
        fsync_directory(self.directory)

    def _rotate(self, first_seq: int) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._start_segment(first_seq)
