"""Snapshots on disk, recovery (snapshot + replay), point-in-time recovery and verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import encode
from meridian_hotpath import journal as journal_module
from meridian_hotpath.journal import RECORD_OVERHEAD, JournalCorruptError, JournalWriter, segment_paths
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.recovery import (
    RecoveryError,
    engine_checksum,
    journal_dir,
    recover,
    snapshot_dir,
    verify,
)
from meridian_hotpath.snapshot import InvalidSnapshotError, SnapshotFile, SnapshotStore, snapshot_name
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine

INPUTS = list(synthetic_flow(seed=7, count=400))


@pytest.fixture
def synced_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage in these small journals lies before the unsynced window (the torn-tail rule)."""
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", RECORD_OVERHEAD)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# ---- snapshot files ---------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(12, 0xFFFF_FFFF_FFFF_FFFF, b"state")
    assert path.name == snapshot_name(12)
    loaded = store.load(SnapshotFile(12, path))
    assert (loaded.seq, loaded.checksum, loaded.payload) == (12, 0xFFFF_FFFF_FFFF_FFFF, b"state")
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic"])
def test_damaged_snapshot_is_invalid(tmp_path: Path, damage: str) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(3, 1, b"payload bytes")
    if damage == "flip":
        flip_byte(path, 30)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-3])
    else:
        flip_byte(path, 0)
    with pytest.raises(InvalidSnapshotError):
        store.load(store.files()[0])


def test_snapshot_renamed_to_another_seq_is_invalid(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(3, 1, b"x").rename(tmp_path / snapshot_name(4))
    with pytest.raises(InvalidSnapshotError, match="holds seq 3"):
        store.load(store.files()[0])


def test_stray_temporaries_are_removed(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(1, 1, b"x")
    (tmp_path / (snapshot_name(2) + ".tmp")).write_bytes(b"half")
    assert [p.name for p in store.remove_stray_temporaries()] == [snapshot_name(2) + ".tmp"]
    assert [s.seq for s in store.files()] == [1]


# ---- recovery ---------------------------------------------------------------------------------


def test_recovery_from_journal_only_equals_a_fresh_engine(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS)
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert (report.seq, report.snapshot_seq, report.replayed) == (400, None, 400)
    assert engine.checksum() == fresh_engine(INPUTS).checksum()


def test_recovery_uses_the_newest_snapshot_and_replays_the_rest(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100, 250})
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert (report.snapshot_seq, report.replayed) == (250, 150)
    assert engine.checksum() == fresh_engine(INPUTS).checksum()


def test_invalid_snapshot_is_skipped_with_a_report(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100, 250})
    flip_byte(snapshot_dir(tmp_path) / snapshot_name(250), 40)
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.snapshot_seq == 100
    assert len(report.skipped_snapshots) == 1
    assert "crc mismatch" in report.skipped_snapshots[0]
    assert engine.checksum() == fresh_engine(INPUTS).checksum()


def test_snapshot_whose_state_disagrees_with_its_checksum_is_skipped(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100})
    store = SnapshotStore(snapshot_dir(tmp_path))
    store.write(300, 12345, fresh_engine(INPUTS[:300]).snapshot())  # intact file, wrong checksum
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.snapshot_seq == 100
    assert "does not match its checksum" in report.skipped_snapshots[0]
    assert engine.seq == 400


@pytest.mark.parametrize("to_seq", [0, 1, 99, 100, 101, 249, 250, 399, 400])
def test_point_in_time_recovery_equals_a_fresh_engine_fed_the_first_n(tmp_path: Path, to_seq: int) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100, 250})
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS, to_seq=to_seq)
    reference = fresh_engine(INPUTS[:to_seq])
    assert engine.seq == to_seq
    assert engine.checksum() == reference.checksum()
    assert engine.book_checksums() == reference.book_checksums()
    assert report.snapshot_seq == max((s for s in (100, 250) if s <= to_seq), default=None)


def test_point_in_time_recovery_beyond_the_journal_is_an_error(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:50])
    with pytest.raises(RecoveryError, match="journal ends at seq 50"):
        recover(tmp_path, DEFAULT_INSTRUMENTS, to_seq=51)


def test_torn_tail_is_truncated_on_repair_and_kept_on_read_only_recovery(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:50])
    segment = segment_paths(journal_dir(tmp_path))[-1]
    with open(segment, "ab") as handle:
        handle.write(b"\x50\x00\x00\x00\x33")
    size = segment.stat().st_size
    _, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.torn_tail is not None
    assert segment.stat().st_size == size  # read-only callers leave the files alone
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS, repair=True)
    assert report.torn_tail is not None
    assert segment.stat().st_size == size - 5
    assert engine.seq == 50
    assert recover(tmp_path, DEFAULT_INSTRUMENTS)[1].torn_tail is None


def test_corruption_mid_journal_refuses_recovery_naming_the_seq(tmp_path: Path, synced_region: None) -> None:
    build_data_dir(tmp_path, INPUTS[:60])
    first = segment_paths(journal_dir(tmp_path))[0]
    flip_byte(first, 200)
    with pytest.raises(JournalCorruptError) as caught:
        recover(tmp_path, DEFAULT_INSTRUMENTS, repair=True)
    assert 1 <= caught.value.seq <= 60
    assert f"seq {caught.value.seq}" in str(caught.value)


def test_snapshot_ahead_of_the_journal_refuses_recovery(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:50])
    SnapshotStore(snapshot_dir(tmp_path)).write(
        80, engine_checksum(fresh_engine(INPUTS[:80])), fresh_engine(INPUTS[:80]).snapshot()
    )
    with pytest.raises(RecoveryError, match="before the snapshot"):
        recover(tmp_path, DEFAULT_INSTRUMENTS)


def test_recovered_node_keeps_journaling_where_recovery_ended(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:100], snapshot_at={40})
    engine, _ = recover(tmp_path, DEFAULT_INSTRUMENTS, repair=True)
    writer = JournalWriter(journal_dir(tmp_path), engine.seq + 1)
    for request in INPUTS[100:]:
        engine.process(request)
        writer.append(engine.seq, encode(request))
    writer.close()
    again, report = recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.seq == 400
    assert again.checksum() == fresh_engine(INPUTS).checksum()


# ---- verify -----------------------------------------------------------------------------------


def test_verify_clean_data_dir(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100, 250})
    report = verify(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.problems == []
    assert report.last_good_seq == 400
    assert report.snapshots_checked == 2
    assert report.book_checksums == fresh_engine(INPUTS).book_checksums()


def test_verify_reports_a_snapshot_that_disagrees_with_the_journal(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100})
    wrong = fresh_engine(INPUTS[:99])
    SnapshotStore(snapshot_dir(tmp_path)).write(100, engine_checksum(wrong), wrong.snapshot())
    assert any("differs" in problem for problem in verify(tmp_path, DEFAULT_INSTRUMENTS).problems)


def test_verify_treats_a_torn_tail_as_a_warning(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:30])
    with open(segment_paths(journal_dir(tmp_path))[-1], "ab") as handle:
        handle.write(b"\x01\x02")
    report = verify(tmp_path, DEFAULT_INSTRUMENTS)
    assert report.problems == []
    assert len(report.warnings) == 1
    assert report.last_good_seq == 30


def test_verify_reports_mid_journal_corruption(tmp_path: Path, synced_region: None) -> None:
    build_data_dir(tmp_path, INPUTS[:60])
    flip_byte(segment_paths(journal_dir(tmp_path))[0], 200)
    report = verify(tmp_path, DEFAULT_INSTRUMENTS)
    assert any("journal corrupt at seq" in problem for problem in report.problems)
    assert report.last_good_seq < 60
