"""Append-only journal of every state-changing input, the node's source of truth.

A journal is a directory of segment files ``journal-<first seq>.log``. Each record is::

    u16 frame_length | u16 epoch | u64 seq | frame (the request's wire frame) | u32 crc32c(all before)

The epoch is the leadership term of the shard when the record was written (``lease``): a record
from a deposed primary is recognisable by it, and a replica refuses what comes from an older term.
Journals written before epochs existed read as epoch 0 (the two fields were one u32 length).

Records are appended in batches: the node's matching core encodes the records of the inputs that
arrived together, the writer hands them to the page cache with one ``write`` (``write_records``) and
the journal's syncer thread (``journal_sync``) makes them durable with one ``fdatasync`` for every
batch written meanwhile, off the event loop. Segments rotate at batch boundaries, so a record never
spans two files and every segment but the last is complete. Tools and tests use the synchronous
``append``/``commit``.

The torn-tail rule. ``fdatasync`` makes every byte of the file written before it durable, so a
crash of the host can damage only what was written after the last sync: the unsynced window. The
writer never lets that window grow past ``UNSYNCED_WINDOW_BYTES`` (``write_records`` waits for the
syncer first; a batch bigger than the window is written in record-aligned pieces, each made durable
before the next). Pages of the window reach the disk in any order, so a torn record may be followed
by intact records written after it (a later page flushed, an earlier one not), and the window may
span a segment rotation (the old segment is synced behind the first writes to the new one).
Therefore, when reading stops at a record it cannot read (truncated, implausible length, bad CRC):

* if nothing intact follows it and it is in the last segment, it is a torn tail (any size: nothing
  readable is lost);
* if intact records or later segments follow it, it is a torn tail only when every byte from it to
  the end of the journal fits in the unsynced window: then none of it was ever synced, so in
  ``fsync`` ack mode none of it was acknowledged (in ``async`` mode a host crash loses the window,
  as that mode says). The intact records after it are dropped with it, and later segments deleted;
* otherwise the defect lies in the synced region: durable data was damaged, reading stops with
  ``JournalCorruptError`` naming the sequence number, and the node refuses to start.

An intact record carrying the wrong seq, or a bad frame inside an intact record, is corruption
wherever it is. The rule cannot tell disk damage inside the last window from a torn write; it reads
it as a torn tail and says how many intact records it dropped (``TornTail.describe``).
"""

from __future__ import annotations

import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import google_crc32c

from meridian.protocol import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    Admin,
    Cancel,
    NewOrder,
    NewStopOrder,
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
# The most bytes written but not yet synced at any moment (the torn-tail rule above). At ~100 bytes
# a record that is over 2,500 records per fdatasync: a disk slower than that holds the writer back.
# Small, because damage inside it cannot be told from a torn write.
UNSYNCED_WINDOW_BYTES = 256 * 1024

if TYPE_CHECKING:
    from meridian_hotpath.journal_sync import JournalSyncer

StateChange = NewOrder | NewStopOrder | Cancel | Replace | Admin
STATE_CHANGE_TYPES = (NewOrder, NewStopOrder, Cancel, Replace, Admin)


class ReplayingEngine(Protocol):
    """What replaying a journal needs of an engine (the native core's ``replay``)."""

    @property
    def seq(self) -> int: ...

    def replay(
        self,
        data: bytes,
        offset: int = 0,
        end: int = -1,
        to_seq: int = 0,
        answers: bool = False,
        first_seq: int = 0,
    ) -> tuple[int, int, str | None, bytes, int]: ...


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
    later_segments: tuple[Path, ...] = ()  # wholly inside the unsynced window: deleted with it
    intact_dropped: int = 0  # intact records after the torn one (written later, never synced)

    def describe(self) -> str:
        extra = ""
        if self.intact_dropped:
            extra += f", {self.intact_dropped} intact unsynced records after it"
        if self.later_segments:
            extra += f", {len(self.later_segments)} later segment(s)"
        return (
            f"torn tail after seq {self.last_good_seq}: {self.dropped_bytes} bytes at "
            f"{self.segment.name} offset {self.offset} ({self.reason}{extra})"
        )


def record_word(length: int, epoch: int) -> int:
    """The first u32 of a record: the frame's length in the low 16 bits, the epoch in the high 16."""
    return (epoch << 16) | length


def encode_record(seq: int, frame: bytes, epoch: int = 0) -> bytes:
    header = RECORD_HEADER.pack(record_word(len(frame), epoch), seq)
    crc = google_crc32c.extend(google_crc32c.value(header), frame)
    return header + frame + RECORD_CRC.pack(crc)


def _record_at(data: bytes, offset: int) -> tuple[int, int, str | None]:
    """Parse the record at ``offset``: ``(seq, end offset, None)`` or ``(0, 0, defect)``."""
    if len(data) - offset < RECORD_HEADER.size:
        return 0, 0, "truncated header"
    word, seq = RECORD_HEADER.unpack_from(data, offset)
    length = word & 0xFFFF
    if not HEADER_SIZE <= length <= MAX_FRAME_SIZE:
        return 0, 0, f"implausible frame length {length}"
    end = offset + RECORD_HEADER.size + length + RECORD_CRC.size
    if end > len(data):
        return 0, 0, "truncated record"
    (stored,) = RECORD_CRC.unpack_from(data, end - RECORD_CRC.size)
    if google_crc32c.value(data[offset : end - RECORD_CRC.size]) != stored:
        return 0, 0, "crc mismatch"
    return seq, end, None


def _intact_records_after(data: bytes, offset: int) -> int:
    """How many intact records start after ``offset`` (a defect): tells a torn tail from damage.

    Only runs when a defect was found, over the bytes after it (at most the unsynced window when
    the defect is a torn tail; the scan stops early once the answer is corruption).
    """
    found, start = 0, offset + 1
    while start < len(data):
        _, end, defect = _record_at(data, start)
        if defect is None:
            found += 1
            start = end
        else:
            start += 1
    return found


def torn_tail_or_corrupt(
    paths: list[Path], index: int, data: bytes, offset: int, last_good_seq: int, defect: str
) -> TornTail:
    """Apply the torn-tail rule (module docstring) to a defect at ``offset`` of ``paths[index]``
    (whose bytes are ``data``): the ``TornTail`` to cut off, or ``JournalCorruptError``."""
    path, later = paths[index], tuple(paths[index + 1 :])
    after = len(data) - offset + sum(p.stat().st_size for p in later)
    if after > UNSYNCED_WINDOW_BYTES and (later or _valid_record_follows(data, offset)):
        raise JournalCorruptError(
            path, offset, last_good_seq + 1, f"{defect} before intact records, in the synced region"
        )
    intact = _intact_records_after(data, offset) if after <= UNSYNCED_WINDOW_BYTES else 0
    return TornTail(path, offset, after, last_good_seq, defect, later, intact)


def _valid_record_follows(data: bytes, offset: int) -> bool:
    """Whether any intact record starts after ``offset``."""
    return any(_record_at(data, start)[2] is None for start in range(offset + 1, len(data)))


@dataclass(frozen=True, slots=True)
class SegmentScan:
    records: list[JournalRecord]
    good_end: int  # offset just after the last intact record
    defect: str | None  # why parsing stopped before the end of the file, if it did
    data: bytes = b""  # the segment's bytes, kept when there is a defect (the torn-tail rule)


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
            return SegmentScan(records, offset, defect, data)
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


def journal_first_seq(directory: Path) -> int | None:
    """The seq the journal's oldest segment starts at (None for an empty journal)."""
    paths = segment_paths(directory)
    return segment_first_seq(paths[0]) if paths else None


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

    Raises ``JournalCorruptError`` on damage that the torn-tail rule does not allow (module
    docstring), and on a gap between segments; reading ends at a torn tail.
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
        tail = None
        if result.defect is not None:
            last = first + len(result.records) - 1
            tail = torn_tail_or_corrupt(paths, index, result.data, result.good_end, last, result.defect)
        for record in result.records:
            if record.seq > after_seq:
                yield record
        expected = first + len(result.records)
        if scan is not None:
            scan.last_seq = expected - 1
            scan.torn_tail = tail
        if tail is not None:
            return


def replay_journal(
    directory: Path,
    engine: ReplayingEngine,
    to_seq: int | None = None,
    on_answers: Callable[[bytes], object] | None = None,
) -> JournalScan:
    """Apply every intact record after ``engine.seq`` (up to ``to_seq``) to ``engine``, in the
    engine's own code (CRC32C, frame checks and matching, no Python object per record).

    The rules of ``read_journal``: damage the torn-tail rule does not allow raises
    ``JournalCorruptError``, as does a gap between segments. ``on_answers`` gets the encoded answers
    of each segment's applied records. Returns what was read; the torn tail, if any, is known only
    when the replay reached the journal's end.
    """
    paths = segment_paths(directory)
    expected = segment_first_seq(paths[0]) if paths else engine.seq + 1
    scan = JournalScan(expected, expected - 1, None)
    for index, path in enumerate(paths):
        first = segment_first_seq(path)
        if first != expected:
            raise JournalCorruptError(
                path, 0, expected, f"segment starts at seq {first}, expected {expected}"
            )
        next_first = segment_first_seq(paths[index + 1]) if index + 1 < len(paths) else None
        if next_first is not None and next_first <= engine.seq + 1:
            expected = next_first  # the whole segment is at or before the engine's state
            scan.last_seq = next_first - 1
            continue
        if to_seq is not None and engine.seq >= to_seq:
            return scan
        if first > engine.seq + 1:
            raise JournalCorruptError(path, 0, engine.seq + 1, f"journal resumes at seq {first}")
        data = path.read_bytes()
        end, _, defect, answers, last = engine.replay(
            data, 0, -1, 0 if to_seq is None else to_seq, on_answers is not None, first
        )
        if on_answers is not None and answers:
            on_answers(answers)
        expected = last + 1
        scan.last_seq = last
        if to_seq is not None and engine.seq >= to_seq:
            return scan
        if defect is not None:
            if not defect.startswith(("truncated", "implausible", "crc")):
                raise JournalCorruptError(path, end, last + 1, defect)
            scan.torn_tail = torn_tail_or_corrupt(paths, index, data, end, last, defect)
            return scan
    return scan


def _record_pieces(data: bytes, limit: int) -> Iterator[tuple[bytes, int]]:
    """Split encoded records into record-aligned pieces of at most ``limit`` bytes (one record
    alone if it is bigger): ``(piece, seq of its last record)``."""
    start = offset = 0
    last = 0
    while offset < len(data):
        word, seq = RECORD_HEADER.unpack_from(data, offset)
        size = RECORD_OVERHEAD + (word & 0xFFFF)
        if offset > start and offset + size - start > limit:
            yield data[start:offset], last
            start = offset
        offset += size
        last = seq
    if offset > start:
        yield data[start:offset], last


def truncate_torn_tail(tail: TornTail) -> None:
    """Cut the journal at the torn record: later segments first (newest first), then the rest of
    its own segment, so a crash meanwhile leaves a journal the rule still reads the same way."""
    for later in reversed(tail.later_segments):
        later.unlink(missing_ok=True)
    if tail.later_segments:
        fsync_directory(tail.segment.parent)
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
    """Appends records in batches.

    The node's path: ``start_syncer`` once, then ``write_records`` for each batch of records the
    matching core encoded (one ``write()`` on the caller's thread); the syncer thread makes them
    durable behind it and ``durable_seq`` says how far. Tools and tests: ``append`` records one by
    one and ``commit`` (write and fdatasync on the caller's thread).
    """

    def __init__(
        self,
        directory: Path,
        next_seq: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        on_sync: Callable[[float, int], None] | None = None,
        unsynced_window: int = UNSYNCED_WINDOW_BYTES,
    ) -> None:
        self.directory = directory
        self.unsynced_window = unsynced_window
        # Bytes handed to write() so far, and (last seq, bytes written through it) of each write
        # not yet known durable: how far the unsynced window reaches (``write_records``).
        self._written_bytes = 0
        self._durable_bytes = 0
        self._unsynced: deque[tuple[int, int]] = deque()
        self.next_seq = next_seq
        self.segment_bytes = segment_bytes
        self._on_sync = on_sync  # (seconds spent in fdatasync, records in the batch)
        self._buffer = bytearray()
        self._pending = 0
        self._durable_seq = next_seq - 1
        self.syncer: JournalSyncer | None = None
        self._dir_fd = -1
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
        return self._durable_seq if self.syncer is None else int(self.syncer.durable_seq)

    def start_syncer(self) -> JournalSyncer:
        """Hand fdatasync to a native syncer thread (``journal_sync``) for ``write_records``."""
        from meridian_hotpath.journal_sync import JournalSyncer  # noqa: PLC0415

        self._dir_fd = os.open(self.directory, os.O_RDONLY)
        syncer = JournalSyncer(self._fd, self._dir_fd, self._durable_seq)
        self.syncer = syncer
        return syncer

    def write_records(self, data: bytes, last_seq: int) -> None:
        """Write encoded records ending at ``last_seq`` (one ``write``, into the page cache) and
        let the syncer make them durable. Raises OSError when the write fails."""
        syncer = self.syncer
        assert syncer is not None, "start_syncer first"
        if len(data) > self.unsynced_window:
            for piece, piece_last in _record_pieces(data, self.unsynced_window):
                self.write_records(piece, piece_last)
                self._wait_unsynced(syncer, 0)  # each piece durable before the next: the window holds
            return
        if self._written_bytes + len(data) - self._durable_bytes > self.unsynced_window:
            self._wait_unsynced(syncer, len(data))
        if self._size >= self.segment_bytes:
            old = self._fd
            self._start_segment(self.next_seq, sync_directory=False)
            syncer.rotate(self._fd)  # the syncer fsyncs and closes the old one, and the directory
            del old
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])
        self.count_written(len(data), last_seq)
        syncer.written(last_seq)

    def count_written(self, length: int, last_seq: int) -> None:
        """``length`` bytes of records ending at ``last_seq`` were appended to the current segment:
        by ``write_records``, or by another thread (a standby's native receiver, which also told
        the syncer)."""
        self._size += length
        self._written_bytes += length
        self._unsynced.append((last_seq, self._written_bytes))
        self.next_seq = last_seq + 1

    def fast_lane(self) -> tuple[int, int, int, int]:
        """What a writer on another thread (a standby's native receiver) needs to append after this
        one: the segment's fd, its size, the next seq and the bytes written but not known durable."""
        syncer = self.syncer
        assert syncer is not None, "start_syncer first"
        self._forget_durable(syncer)
        return self._fd, self._size, self.next_seq, self._written_bytes - self._durable_bytes

    def _forget_durable(self, syncer: JournalSyncer) -> None:
        """Drop the writes the syncer has made durable from the unsynced window."""
        durable = int(syncer.durable_seq)
        while self._unsynced and self._unsynced[0][0] <= durable:
            self._durable_bytes = self._unsynced.popleft()[1]

    def _wait_unsynced(self, syncer: JournalSyncer, adding: int) -> None:
        """Hold the writer until ``adding`` more bytes fit in the unsynced window (backpressure
        from a disk that is far behind; it never triggers at the node's ordinary rates)."""
        while True:
            self._forget_durable(syncer)
            if (
                not self._unsynced
                or self._written_bytes + adding - self._durable_bytes <= self.unsynced_window
            ):
                return
            if syncer.error:
                raise OSError(syncer.error, os.strerror(syncer.error))
            if not syncer.running:  # a syncer not started (tools, benches): sync on this thread
                os.fdatasync(self._fd)
                self._durable_bytes = self._written_bytes
                self._unsynced.clear()
                return
            time.sleep(0.0002)

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
        """Write ``batch`` and fdatasync it; return the seconds the fdatasync took. A batch bigger
        than the unsynced window is written and synced in pieces (the torn-tail rule)."""
        if self._size >= self.segment_bytes:
            self._rotate(batch.first_seq)
        elapsed = 0.0
        for piece, _ in _record_pieces(batch.data, self.unsynced_window):
            view = memoryview(piece)
            written = 0
            while written < len(view):
                written += os.write(self._fd, view[written:])
            started = time.perf_counter()
            os.fdatasync(self._fd)
            elapsed += time.perf_counter() - started
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
        """Make everything written durable and close (the syncer's error, if any, is raised)."""
        if self.syncer is not None:
            syncer, self.syncer = self.syncer, None
            try:
                self._durable_seq = int(syncer.stop())
            finally:
                os.close(self._dir_fd)
                self._dir_fd = -1
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
            return
        if self._fd >= 0:
            self.commit()
            os.close(self._fd)
            self._fd = -1

    def _open_segment(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    def _start_segment(self, first_seq: int, sync_directory: bool = True) -> None:
        path = self.directory / segment_name(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o640)
        self._size = 0
        if sync_directory:
            fsync_directory(self.directory)

    def _rotate(self, first_seq: int) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._start_segment(first_seq)
