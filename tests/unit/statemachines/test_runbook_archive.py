"""The S3 archive of journal segments and snapshots: ship, restore, and every way a restore refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian_hotpath.archive import (
    ArchiveChecksumError,
    ArchivedObject,
    ArchiveRestoreError,
    archived_segments,
    plan_restore,
    restore,
    ship,
)
from meridian_hotpath.recovery import engine_checksum, recover
from tests.s3 import S3_BUCKET as BUCKET
from tests.unit.statemachines.trading_data import write_data_dir

PREFIX = "nodes/node-a"


def test_restore_reproduces_the_primary_state_from_snapshot_and_journal(tmp_path: Path, s3: Any) -> None:
    engine = write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(20,), segment_bytes=800)
    shipped = ship(tmp_path / "primary", s3, BUCKET, PREFIX, include_active=True)
    assert len([k for k in shipped.uploaded if "/journal/" in k]) >= 4

    result = restore(s3, BUCKET, PREFIX, tmp_path / "secondary")

    assert (result.seq, result.snapshot_seq) == (40, 20)
    assert result.replayed == 20
    assert result.checksum == engine_checksum(engine)
    assert result.book_checksums == engine.book_checksums()
    assert not any(key.endswith("journal-00000000000000000001.log") for key in result.objects)
    restarted, _ = recover(tmp_path / "secondary", [], repair=True)  # a node can start from it
    assert restarted.seq == 40


def test_shipping_again_uploads_only_what_changed(tmp_path: Path, s3: Any) -> None:
    write_data_dir(tmp_path / "primary", orders=30, segment_bytes=800)
    first = ship(tmp_path / "primary", s3, BUCKET, PREFIX)
    again = ship(tmp_path / "primary", s3, BUCKET, PREFIX)
    assert first.uploaded
    assert not again.uploaded
    assert sorted(again.unchanged) == sorted(first.uploaded)


def test_without_the_active_segment_the_restore_stops_at_the_last_sealed_record(
    tmp_path: Path, s3: Any
) -> None:
    write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(), segment_bytes=800)
    ship(tmp_path / "primary", s3, BUCKET, PREFIX)
    segments = archived_segments(s3, BUCKET, PREFIX)
    last_sealed = int(s3.head_object(Bucket=BUCKET, Key=segments[-1].key)["Metadata"]["last-seq"])

    result = restore(s3, BUCKET, PREFIX, tmp_path / "secondary")

    assert result.seq == last_sealed < 40


def test_a_snapshot_newer_than_the_archived_journal_is_restored_on_its_own(tmp_path: Path, s3: Any) -> None:
    engine = write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(40,), segment_bytes=800)
    ship(tmp_path / "primary", s3, BUCKET, PREFIX)  # active segment not shipped; snapshot at 40 is

    result = restore(s3, BUCKET, PREFIX, tmp_path / "secondary")

    assert (result.seq, result.snapshot_seq, result.replayed) == (40, 40, 0)
    assert result.checksum == engine_checksum(engine)


def test_point_in_time_restore(tmp_path: Path, s3: Any) -> None:
    write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(10, 30), segment_bytes=800)
    ship(tmp_path / "primary", s3, BUCKET, PREFIX, include_active=True)
    expected, _ = recover(tmp_path / "primary", [], to_seq=25)

    result = restore(s3, BUCKET, PREFIX, tmp_path / "secondary", to_seq=25)

    assert (result.seq, result.snapshot_seq) == (25, 10)
    assert result.checksum == engine_checksum(expected)


def test_tampered_bytes_fail_the_restore_with_a_checksum_error(tmp_path: Path, s3: Any) -> None:
    write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(20,), segment_bytes=800)
    ship(tmp_path / "primary", s3, BUCKET, PREFIX, include_active=True)
    victim = archived_segments(s3, BUCKET, PREFIX)[-1].key
    original = s3.get_object(Bucket=BUCKET, Key=victim)
    body = bytearray(original["Body"].read())
    body[30] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body), Metadata=original["Metadata"])

    with pytest.raises(ArchiveChecksumError, match="SHA-256"):
        restore(s3, BUCKET, PREFIX, tmp_path / "secondary")


def test_a_missing_segment_fails_the_restore_instead_of_skipping_records(tmp_path: Path, s3: Any) -> None:
    write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(), segment_bytes=800)
    ship(tmp_path / "primary", s3, BUCKET, PREFIX, include_active=True)
    s3.delete_object(Bucket=BUCKET, Key=archived_segments(s3, BUCKET, PREFIX)[2].key)

    with pytest.raises(ArchiveRestoreError, match="journal gap"):
        restore(s3, BUCKET, PREFIX, tmp_path / "secondary")


def test_an_empty_archive_or_a_used_directory_is_refused(tmp_path: Path, s3: Any) -> None:
    with pytest.raises(ArchiveRestoreError, match="nothing archived"):
        restore(s3, BUCKET, PREFIX, tmp_path / "secondary")
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    with pytest.raises(ArchiveRestoreError, match="not empty"):
        restore(s3, BUCKET, PREFIX, used)


def test_plan_picks_the_newest_snapshot_not_after_the_target_and_the_segments_after_it() -> None:
    segments = [ArchivedObject(f"j{first}", first, 1) for first in (1, 9, 17, 25)]
    snapshots = [ArchivedObject(f"s{seq}", seq, 1) for seq in (10, 20)]

    def plan(snapshots: list[ArchivedObject], to_seq: int | None) -> tuple[int | None, list[int]]:
        snapshot, needed = plan_restore(segments, snapshots, to_seq)
        return (None if snapshot is None else snapshot.seq), [s.seq for s in needed]

    assert plan(snapshots, None) == (20, [17, 25])
    assert plan(snapshots, 12) == (10, [9])
    assert plan([], None) == (None, [1, 9, 17, 25])


def test_the_command_line_ships_prunes_and_restores(
    tmp_path: Path, s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json  # noqa: PLC0415

    from meridian_hotpath.archive import main  # noqa: PLC0415

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    engine = write_data_dir(tmp_path / "primary", orders=40, snapshot_at=(20,), segment_bytes=800)
    base = ["--bucket", BUCKET, "--prefix", PREFIX]
    assert main(["ship", "--data-dir", str(tmp_path / "primary"), *base, "--include-active"]) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert any("/journal/" in key for key in shipped["uploaded"])
    assert main(["ship", "--data-dir", str(tmp_path / "primary"), *base, "--prune-keep", "1"]) == 0
    assert "pruned" in json.loads(capsys.readouterr().out)
    assert main(["restore", "--data-dir", str(tmp_path / "secondary"), *base]) == 0
    restored = json.loads(capsys.readouterr().out)
    assert restored["seq"] == 40
    assert restored["checksum"] == engine_checksum(engine)
    # Nothing archived under a prefix: a clear error and exit code 3, not a traceback.
    assert (
        main(["restore", "--data-dir", str(tmp_path / "third"), "--bucket", BUCKET, "--prefix", "none/"]) == 3
    )
    assert capsys.readouterr().out.startswith("error: ")
    with pytest.raises(SystemExit) as refused:
        main(["ship", "--data-dir", str(tmp_path / "primary"), *base, "--prune-keep", "0"])
    assert refused.value.code == 2
