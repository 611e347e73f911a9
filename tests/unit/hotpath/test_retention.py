"""Local retention: what pruning deletes, what it must keep, and that recovery and the archive's
point-in-time restore still reach every state afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian_hotpath.archive import main as archive_main
from meridian_hotpath.archive import restore, ship_and_prune
from meridian_hotpath.journal import segment_first_seq, segment_paths
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.recovery import engine_checksum, journal_dir, recover, snapshot_dir, verify
from meridian_hotpath.retention import plan_prune, prune
from meridian_hotpath.snapshot import SnapshotStore
from tests.s3 import S3_BUCKET as BUCKET
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine

INPUTS = list(synthetic_flow(seed=11, count=600))
SNAPSHOTS = (100, 200, 300, 400, 500)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    build_data_dir(tmp_path / "node", INPUTS, snapshot_at=SNAPSHOTS)
    return tmp_path / "node"


def snapshot_seqs(data_dir: Path) -> list[int]:
    return [f.seq for f in SnapshotStore(snapshot_dir(data_dir)).files()]


def test_keeps_the_newest_snapshots_and_every_segment_after_the_oldest_kept(data_dir: Path) -> None:
    before = segment_paths(journal_dir(data_dir))
    report = prune(data_dir, keep_snapshots=2)
    assert report.keep_from_seq == 400
    assert snapshot_seqs(data_dir) == [400, 500]
    after = segment_paths(journal_dir(data_dir))
    assert after
    assert after == before[len(before) - len(after) :]
    assert segment_first_seq(after[0]) <= 401  # the replay from snapshot 400 starts inside it
    assert len(after) < len(before)  # something was freed
    assert report.bytes_freed > 0
    assert len(report.deleted) == len(before) - len(after) + 3


def test_recovery_and_verify_after_pruning_match_the_unpruned_state(data_dir: Path) -> None:
    prune(data_dir, keep_snapshots=2)
    engine, report = recover(data_dir, fresh_engine([]).instruments.values())
    assert engine.seq == len(INPUTS)
    assert report.snapshot_seq == 500
    assert engine_checksum(engine) == engine_checksum(fresh_engine(INPUTS))
    checked = verify(data_dir, fresh_engine([]).instruments.values())
    assert checked.problems == []
    assert checked.last_good_seq == len(INPUTS)
    # point in time: still every seq from the oldest kept snapshot on
    at_450, _ = recover(data_dir, fresh_engine([]).instruments.values(), to_seq=450)
    assert engine_checksum(at_450) == engine_checksum(fresh_engine(INPUTS[:450]))


def test_a_damaged_snapshot_does_not_count_as_kept(data_dir: Path) -> None:
    newest = SnapshotStore(snapshot_dir(data_dir)).files()[-1].path
    newest.write_bytes(newest.read_bytes()[:-5])
    plan = plan_prune(data_dir, keep_snapshots=2)
    assert plan.keep_from_seq == 300  # 500 is damaged: 400 and 300 are the two kept
    assert [p.name for p in plan.snapshots] == [
        f.path.name for f in SnapshotStore(snapshot_dir(data_dir)).files() if f.seq < 300
    ]


def test_too_few_valid_snapshots_deletes_nothing(data_dir: Path) -> None:
    files = sorted(p.name for p in data_dir.rglob("*") if p.is_file())
    report = prune(data_dir, keep_snapshots=len(SNAPSHOTS) + 1)
    assert report.keep_from_seq is None
    assert report.deleted == []
    assert sorted(p.name for p in data_dir.rglob("*") if p.is_file()) == files


def test_the_active_segment_is_never_deleted(tmp_path: Path) -> None:
    # One snapshot at the very end: every record is covered, but the last segment is the writer's.
    build_data_dir(tmp_path / "node", INPUTS, snapshot_at=(len(INPUTS),))
    prune(tmp_path / "node", keep_snapshots=1)
    left = segment_paths(journal_dir(tmp_path / "node"))
    assert len(left) == 1
    engine, _ = recover(tmp_path / "node", fresh_engine([]).instruments.values())
    assert engine.seq == len(INPUTS)


def test_unshipped_segments_stay_and_so_does_everything_after_them(data_dir: Path) -> None:
    segments = segment_paths(journal_dir(data_dir))
    missing = segments[2]
    report = prune(data_dir, keep_snapshots=2, shipped=lambda path: path != missing)
    left = segment_paths(journal_dir(data_dir))
    assert left[0] == missing  # the journal stays contiguous from the first unshipped segment
    assert missing.name in report.not_shipped
    assert snapshot_seqs(data_dir) == [400, 500]  # old snapshots are not tied to that segment


def test_keep_must_be_positive(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_prune(data_dir, keep_snapshots=0)


def test_ship_and_prune_deletes_only_what_the_archive_holds_and_restore_still_reaches_seq_1(
    data_dir: Path, s3: Any, tmp_path: Path
) -> None:
    shipped, pruned = ship_and_prune(data_dir, s3, BUCKET, "node-a", keep_snapshots=1)
    assert pruned.deleted
    assert pruned.not_shipped == []
    in_archive = {key.rsplit("/", 1)[-1] for key in shipped.uploaded}
    assert set(pruned.deleted) <= in_archive
    # The local disk now starts near snapshot 500, but the archive still rebuilds any older state.
    result = restore(s3, BUCKET, "node-a", tmp_path / "pit", to_seq=150)
    assert result.checksum == engine_checksum(fresh_engine(INPUTS[:150]))


def test_cli_refuses_a_keep_below_one(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        archive_main(["ship", "--data-dir", str(data_dir), "--bucket", BUCKET, "--prune-keep", "0"])
    assert exit_info.value.code == 2
    assert "at least 1" in capsys.readouterr().err
