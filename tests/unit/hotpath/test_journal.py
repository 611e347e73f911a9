"""Journal records, group commit, rotation, torn tails and mid-file corruption."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meridian.protocol import Admin, Cancel, NewOrder, encode
from meridian_hotpath import journal as journal_module
from meridian_hotpath.journal import (
    RECORD_OVERHEAD,
    JournalCorruptError,
    JournalRecord,
    JournalScan,
    JournalWriter,
    StateChange,
    encode_record,
    read_journal,
    segment_paths,
    truncate_torn_tail,
)


@pytest.fixture
def synced_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage in these small journals lies before the unsynced window (the torn-tail rule)."""
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", RECORD_OVERHEAD)


def order(n: int) -> NewOrder:
    return NewOrder(n, f"c{n}", "acct", "AAPL", 1, 1, 1, 0, 10, 19000 + n)


def write(directory: Path, count: int, start: int = 1, segment_bytes: int = 1 << 20) -> list[bytes]:
    writer = JournalWriter(directory, start, segment_bytes)
    frames = [encode(order(n)) for n in range(start, start + count)]
    for offset, frame in enumerate(frames):
        writer.append(start + offset, frame)
        if offset % 3 == 2:
            writer.commit()
    writer.close()
    return frames


def read_all(directory: Path) -> tuple[list[JournalRecord], JournalScan]:
    scan = JournalScan(0, 0, None)
    return list(read_journal(directory, 0, scan)), scan


def test_round_trip_keeps_seq_frame_and_request(tmp_path: Path) -> None:
    frames = write(tmp_path, 10)
    records, scan = read_all(tmp_path)
    assert [r.seq for r in records] == list(range(1, 11))
    assert [r.frame for r in records] == frames
    assert records[4].request() == order(5)
    assert (scan.first_seq, scan.last_seq, scan.torn_tail) == (1, 10, None)


def test_every_state_change_type_round_trips(tmp_path: Path) -> None:
    requests: list[StateChange] = [order(1), Cancel(2, "acct", "AAPL", 1), Admin(3, "", 1)]
    writer = JournalWriter(tmp_path, 1)
    for seq, request in enumerate(requests, start=1):
        writer.append(seq, encode(request))
    assert writer.commit() == 3
    writer.close()
    assert [r.request() for r in read_all(tmp_path)[0]] == requests


def test_records_are_durable_only_after_commit(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, 1)
    writer.append(1, encode(order(1)))
    assert writer.pending == 1
    assert writer.durable_seq == 0
    assert read_all(tmp_path)[0] == []  # buffered, not yet written
    writer.commit()
    assert writer.durable_seq == 1
    assert [r.seq for r in read_all(tmp_path)[0]] == [1]
    writer.close()


def test_writer_rejects_out_of_order_seq(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, 1)
    with pytest.raises(ValueError, match="expects seq 1"):
        writer.append(2, encode(order(2)))
    writer.close()


def test_rotation_splits_at_batch_boundaries_and_reads_back(tmp_path: Path) -> None:
    write(tmp_path, 30, segment_bytes=300)
    assert len(segment_paths(tmp_path)) > 3
    records, scan = read_all(tmp_path)
    assert [r.seq for r in records] == list(range(1, 31))
    assert scan.last_seq == 30


def test_reopened_writer_appends_to_the_last_segment(tmp_path: Path) -> None:
    write(tmp_path, 4)
    write(tmp_path, 4, start=5)
    assert [r.seq for r in read_all(tmp_path)[0]] == list(range(1, 9))
    assert len(segment_paths(tmp_path)) == 1


def test_read_after_seq_skips_older_records_and_segments(tmp_path: Path) -> None:
    write(tmp_path, 30, segment_bytes=300)
    assert [r.seq for r in read_journal(tmp_path, 25)] == list(range(26, 31))


@pytest.mark.parametrize("cut", [1, 5, 12, 40, RECORD_OVERHEAD + 79])
def test_torn_tail_is_reported_and_truncated(tmp_path: Path, cut: int) -> None:
    write(tmp_path, 5)
    segment = segment_paths(tmp_path)[-1]
    whole = segment.stat().st_size
    tail = encode(order(6))
    with open(segment, "ab") as handle:  # a crash in the middle of writing record 6
        handle.write(encode_record(6, tail)[:cut])
    records, scan = read_all(tmp_path)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert scan.torn_tail is not None
    assert scan.torn_tail.last_good_seq == 5
    assert scan.torn_tail.dropped_bytes == cut
    truncate_torn_tail(scan.torn_tail)
    assert segment.stat().st_size == whole
    assert read_all(tmp_path)[1].torn_tail is None
    write(tmp_path, 1, start=6)  # the journal continues where the intact records end
    assert [r.seq for r in read_all(tmp_path)[0]] == [1, 2, 3, 4, 5, 6]


def test_corrupt_crc_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    write(tmp_path, 5)
    segment = segment_paths(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # the last record's CRC
    segment.write_bytes(bytes(data))
    records, scan = read_all(tmp_path)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert scan.torn_tail is not None
    assert scan.torn_tail.reason == "crc mismatch"


def test_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    write(tmp_path, 3)
    with open(segment_paths(tmp_path)[-1], "ab") as handle:
        handle.write(bytes(200))  # a file system that extended the file but not its data
    records, scan = read_all(tmp_path)
    assert len(records) == 3
    assert scan.torn_tail is not None


def test_corruption_mid_file_names_the_seq(tmp_path: Path, synced_region: None) -> None:
    write(tmp_path, 10)
    segment = segment_paths(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    record_size = len(data) // 10
    data[3 * record_size + 30] ^= 0x01  # inside record 4's frame
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as caught:
        read_all(tmp_path)
    assert caught.value.seq == 4
    assert caught.value.offset == 3 * record_size


def test_corruption_in_an_earlier_segment_is_an_error_even_at_its_end(
    tmp_path: Path, synced_region: None
) -> None:
    write(tmp_path, 30, segment_bytes=300)
    first = segment_paths(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="crc mismatch"):
        read_all(tmp_path)


def test_missing_segment_is_a_gap(tmp_path: Path) -> None:
    write(tmp_path, 30, segment_bytes=300)
    os.unlink(segment_paths(tmp_path)[1])
    with pytest.raises(JournalCorruptError, match="expected"):
        read_all(tmp_path)


def test_intact_record_with_wrong_seq_is_corruption(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, 1)
    writer.append(1, encode(order(1)))
    writer.commit()
    writer.close()
    with open(segment_paths(tmp_path)[-1], "ab") as handle:
        handle.write(encode_record(7, encode(order(7))))
    with pytest.raises(JournalCorruptError, match="carries seq 7"):
        read_all(tmp_path)
