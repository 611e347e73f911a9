"""Command line: exit codes and what verify/replay print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meridian_hotpath import journal as journal_module
from meridian_hotpath.app import load_instruments
from meridian_hotpath.cli import main
from meridian_hotpath.journal import RECORD_OVERHEAD, segment_paths
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.recovery import journal_dir
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine

Capture = pytest.CaptureFixture[str]
INPUTS = list(synthetic_flow(seed=11, count=120))


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def test_verify_prints_last_good_seq_and_book_checksums(tmp_path: Path, capsys: Capture) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={60})
    assert exit_code(["verify", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "last good seq 120; 1 snapshots checked" in out
    for symbol, checksum in fresh_engine(INPUTS).book_checksums().items():
        assert f"book {symbol} {checksum}" in out


@pytest.fixture
def synced_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage in these small journals lies before the unsynced window (the torn-tail rule)."""
    monkeypatch.setattr(journal_module, "UNSYNCED_WINDOW_BYTES", RECORD_OVERHEAD)


def test_verify_exits_1_on_corruption(tmp_path: Path, capsys: Capture, synced_region: None) -> None:
    build_data_dir(tmp_path, INPUTS)
    segment = segment_paths(journal_dir(tmp_path))[0]
    data = bytearray(segment.read_bytes())
    data[100] ^= 0x10
    segment.write_bytes(bytes(data))
    assert exit_code(["verify", "--data-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "corrupt: journal corrupt at seq" in captured.err
    assert "last good seq" in captured.out


def test_replay_prints_the_checksums_at_the_seq(tmp_path: Path, capsys: Capture) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={50})
    assert exit_code(["replay", "--data-dir", str(tmp_path), "--to-seq", "77"]) == 0
    reference = fresh_engine(INPUTS[:77])
    out = capsys.readouterr().out
    assert f"seq 77 checksum {reference.checksum()}" in out
    assert f"book AAPL {reference.book_checksums()['AAPL']}" in out


def test_replay_beyond_the_journal_exits_1(tmp_path: Path, capsys: Capture) -> None:
    build_data_dir(tmp_path, INPUTS)
    assert exit_code(["replay", "--data-dir", str(tmp_path), "--to-seq", "121"]) == 1
    assert "journal ends at seq 120" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["serve", "--data-dir", "{tmp}"],  # no port
        ["serve", "--data-dir", "{tmp}", "--port", "70000"],
        ["serve", "--data-dir", "{tmp}", "--port", "0", "--snapshot-every", "0"],
        ["serve", "--data-dir", "{tmp}", "--port", "0", "--instruments", "{tmp}/missing.json"],
        ["serve", "--data-dir", "{tmp}", "--port", "0", "--instruments", "{tmp}/bad.json"],
        ["verify", "--data-dir", "{tmp}/nowhere"],
        ["replay", "--data-dir", "{tmp}", "--to-seq", "-1"],
        ["replay", "--data-dir", "{tmp}"],
        ["serve", "--data-dir", "{tmp}", "--port", "0", "--advertise-replication", "no-port"],
        ["serve", "--data-dir", "{tmp}", "--port", "0", "--advertise-replication", "h:99999"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path: Path, argv: list[str], capsys: Capture) -> None:
    (tmp_path / "bad.json").write_text(json.dumps([{"symbol": "AAPL", "tick": 1}]))
    assert exit_code([arg.format(tmp=tmp_path) for arg in argv]) == 2
    assert capsys.readouterr().err.strip()


def test_instruments_file_lists_instrument_fields(tmp_path: Path) -> None:
    path = tmp_path / "instruments.json"
    path.write_text(
        json.dumps([{"symbol": "TSLA", "tick_size": 5, "reference_price": 25000}, {"symbol": "NVDA"}])
    )
    instruments = load_instruments(path)
    assert [i.symbol for i in instruments] == ["TSLA", "NVDA"]
    assert instruments[0].tick_size == 5
    path.write_text(json.dumps([{"symbol": "TSLA"}, {"symbol": "TSLA"}]))
    with pytest.raises(ValueError, match="twice"):
        load_instruments(path)


def test_module_entry_point_exits_2_on_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meridian_hotpath", "serve", "--port", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_serve_refuses_to_start_on_mid_journal_corruption(
    tmp_path: Path, capsys: Capture, synced_region: None
) -> None:
    build_data_dir(tmp_path, INPUTS)
    segment = segment_paths(journal_dir(tmp_path))[0]
    data = bytearray(segment.read_bytes())
    data[100] ^= 0x10
    segment.write_bytes(bytes(data))
    assert exit_code(["serve", "--data-dir", str(tmp_path), "--port", "0", "--no-auth"]) == 1
    assert "refusing to start: journal corrupt at seq" in capsys.readouterr().err


@pytest.mark.parametrize("levels", ["0", "101", "ten"])
def test_serve_refuses_a_depth_outside_1_to_100(tmp_path: Path, levels: str) -> None:
    argv = ["serve", "--data-dir", str(tmp_path), "--port", "0", "--depth-levels", levels]
    assert exit_code(argv) == 2


def test_a_standbys_sync_gap_is_read_in_milliseconds_and_never_negative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the lease store's client (no call made)
    from meridian_hotpath.cli import _shard, build_parser  # noqa: PLC0415
    from meridian_hotpath.shard import REPLICA_SYNC_GAP_S  # noqa: PLC0415

    parser = build_parser()
    shard = (
        "serve",
        "--data-dir",
        "d",
        "--port",
        "0",
        "--shard",
        "A",
        "--lease-table",
        "t",
        "--ack-after",
        "replica",
    )
    default = _shard(parser, parser.parse_args(shard))
    assert default is not None
    assert default.replica_sync_gap == REPLICA_SYNC_GAP_S
    paced = _shard(parser, parser.parse_args([*shard, "--replica-sync-gap-ms", "0"]))
    assert paced is not None
    assert paced.replica_sync_gap == 0.0
    with pytest.raises(SystemExit) as refused:
        parser.parse_args([*shard, "--replica-sync-gap-ms", "-2"])
    assert refused.value.code == 2
