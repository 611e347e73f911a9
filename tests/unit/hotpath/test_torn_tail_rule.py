"""The journal's torn-tail rule: damage inside the unsynced window is a torn tail (cut off, with
the intact records written after it), damage before it is corruption (the node refuses to start)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import NewOrder, encode
from meridian_hotpath import journal as journal_module
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import (
    RECORD_OVERHEAD,
    JournalCorruptError,
    JournalScan,
    JournalWriter,
    encode_record,
    read_journal,
    segment_name,
    segment_paths,
    truncate_torn_tail,
)
from meridian_hotpath.recovery import journal_dir, recover
from tests.unit.hotpath.datadir import build_data_dir


def order(n: int) -> NewOrder:
    return NewOrder(n, f"c{n}", "acct", "AAPL", 1, 1, 1, 0, 10, 19000 + n)


def record(n: int) -> bytes:
    return encode_record(n, encode(order(n)))


def synced_journal(directory: Path, count: int) -> None:
    writer = JournalWriter(directory, 1)
    for n in range(1, count + 1):
        writer.append(n, encode(order(n)))
    writer.commit()
    writer.close()


def torn_then_intact(segment: Path, torn: int, intact: range) -> None:
    """A crash that flushed later pages of the window but not the one holding record ``torn``."""
    whole = record(torn)
    with open(segment, "ab") as handle:
        handle.write(whole[:10] + bytes(len(whole) - 10))
        for n in intact:
            handle.write(record(n))


def scan_of(directory: Path) -> tuple[list[int], JournalScan]:
    scan = JournalScan(0, 0, None)
    return [r.seq for r in read_journal(directory, 0, scan)], scan


def test_intact_records_after_a_torn_one_inside_the_window_are_a_torn_tail(tmp_path: Path) -> None:
    synced_journal(tmp_path, 5)
    segment = segment_paths(tmp_path)[-1]
    synced_size = segment.stat().st_size
    torn_then_intact(segment, 6, range(7, 10))
    seqs, scan = scan_of(tmp_path)
    assert seqs == [1, 2, 3, 4, 5]
    assert scan.torn_tail is not None
    assert scan.torn_tail.intact_dropped == 3
    assert scan.torn_tail.offset == synced_size
    assert "3 intact unsynced records" in scan.torn_tail.describe()
    truncate_torn_tail(scan.torn_tail)
    assert segment.stat().st_size == synced_size
    assert scan_of(tmp_path) == ([1, 2, 3, 4, 5], JournalScan(1, 5, None))


def test_intact_records_after_a_torn_one_beyond_the_window_are_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_journal(tmp_path, 5)
    torn_then_intact(segment_paths(tmp_path)[-1], 6, range(7, 10))
    size = len(record(6)) * 4
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", size - 1)  # the torn one was synced
    with pytest.raises(JournalCorruptError, match="synced region") as caught:
        scan_of(tmp_path)
    assert caught.value.seq == 6
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", size)
    assert scan_of(tmp_path)[1].torn_tail is not None


def test_a_window_spanning_a_rotation_cuts_the_old_segments_tail_and_the_new_segment(tmp_path: Path) -> None:
    synced_journal(tmp_path, 5)
    old = segment_paths(tmp_path)[-1]
    synced_size = old.stat().st_size
    with open(old, "ab") as handle:
        handle.write(record(6)[:-3])  # its last page never reached the disk
    new = tmp_path / segment_name(7)
    new.write_bytes(record(7) + record(8))  # the first writes to the next segment did
    seqs, scan = scan_of(tmp_path)
    assert seqs == [1, 2, 3, 4, 5]
    assert scan.torn_tail is not None
    assert scan.torn_tail.later_segments == (new,)
    truncate_torn_tail(scan.torn_tail)
    assert segment_paths(tmp_path) == [old]
    assert old.stat().st_size == synced_size
    writer = JournalWriter(tmp_path, 6)  # the journal goes on at seq 6 in the old segment
    writer.append(6, encode(order(6)))
    writer.close()
    assert scan_of(tmp_path)[0] == [1, 2, 3, 4, 5, 6]


def test_recovery_applies_the_rule_in_the_native_replay_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_data_dir(tmp_path, [order(n) for n in range(1, 41)])
    segment = segment_paths(journal_dir(tmp_path))[-1]
    torn_then_intact(segment, 41, range(42, 45))
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS, repair=True)
    assert engine.seq == 40
    assert report.torn_tail is not None
    assert report.torn_tail.intact_dropped == 3
    torn_then_intact(segment, 41, range(42, 45))
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", RECORD_OVERHEAD)
    with pytest.raises(JournalCorruptError, match="seq 41"):
        recover(tmp_path, DEFAULT_INSTRUMENTS, repair=True)
    assert segment.stat().st_size > 0  # nothing was cut


def test_the_writer_never_leaves_more_than_the_window_unsynced(tmp_path: Path) -> None:
    window = 600
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    journal = JournalWriter(tmp_path, 1, segment_bytes=4096, unsynced_window=window)
    syncer = journal.start_syncer()
    syncer.start()
    sizes: dict[int, int] = {}
    for batch in range(60):
        first = batch * 4 + 1
        engine.feed(b"".join(encode(order(n)) for n in range(first, first + 4)))
        data = engine.take_journal()
        sizes.update({n: len(data) // 4 for n in range(first, first + 4)})
        journal.write_records(data, engine.seq)
        durable = syncer.durable_seq
        assert sum(size for seq, size in sizes.items() if seq > durable) <= window
    big = b"".join(encode(order(n)) for n in range(241, 281))  # one batch bigger than the window
    engine.feed(big)
    data = engine.take_journal()
    assert len(data) > window
    journal.write_records(data, engine.seq)
    assert (engine.seq - syncer.durable_seq) * (len(data) // 40) <= window
    journal.close()
    assert scan_of(tmp_path)[0] == list(range(1, 281))


def test_tools_batches_bigger_than_the_window_are_synced_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = JournalWriter(tmp_path, 1, unsynced_window=3 * len(record(1)))
    for n in range(1, 11):
        writer.append(n, encode(order(n)))
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    writer.commit()
    writer.close()
    size = len(record(1))
    assert synced == [3 * size, 6 * size, 9 * size, 10 * size]  # never more than 3 records unsynced
    assert scan_of(tmp_path)[0] == list(range(1, 11))
