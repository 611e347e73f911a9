"""The primary's side of catch-up (``read_records``) and a standby's cut-back (``truncate_journal_after``)
over a journal of several segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian_hotpath.journal import RECORD_HEADER, RECORD_OVERHEAD, segment_paths
from meridian_hotpath.recovery import journal_dir, recover
from meridian_hotpath.replication import ReplicationError, read_records, truncate_journal_after
from tests.unit.statemachines.trading_data import write_data_dir


def _count(records: bytes) -> int:
    offset = count = 0
    while offset < len(records):
        offset += (RECORD_HEADER.unpack_from(records, offset)[0] & 0xFFFF) + RECORD_OVERHEAD
        count += 1
    assert offset == len(records)  # whole records only
    return count


def test_catch_up_reads_whole_records_in_range_and_refuses_a_pruned_start(tmp_path: Path) -> None:
    write_data_dir(tmp_path / "n", orders=40, snapshot_at=(), segment_bytes=800)
    journal = journal_dir(tmp_path / "n")
    assert len(segment_paths(journal)) >= 3
    assert _count(read_records(journal, 10, 12)) == 2
    assert _count(read_records(journal, 0, 40, limit=1)) == 1  # at least one record per read
    assert read_records(journal, 40, 40) == b""  # nothing after the end yet
    segment_paths(journal)[0].unlink()  # pruned: a standby that far behind must be restored
    with pytest.raises(ReplicationError, match="no longer holds seq 1"):
        read_records(journal, 0, 40)


def test_cut_back_removes_later_segments_and_truncates_inside_one(tmp_path: Path) -> None:
    write_data_dir(tmp_path / "n", orders=40, snapshot_at=(), segment_bytes=800)
    journal = journal_dir(tmp_path / "n")
    segments = len(segment_paths(journal))
    assert truncate_journal_after(journal, 15) == 25
    assert len(segment_paths(journal)) < segments
    engine, _ = recover(tmp_path / "n", DEFAULT_INSTRUMENTS, repair=False)
    assert engine.seq == 15
    assert truncate_journal_after(journal, 15) == 0  # already there
