"""The node number: kept in the data dir, refused when it disagrees, and the base of every trade id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from meridian.client import HotpathClient
from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.executions import execution_id, node_number_of, trade_id_base
from meridian.protocol import Fill, Message, decode_stream
from meridian_hotpath.archive import restore, ship
from meridian_hotpath.cli import main
from meridian_hotpath.follower import fills_in
from meridian_hotpath.identity import (
    IDENTITY_FILE,
    NodeIdentityError,
    NodeNumberMismatchError,
    claim_node_number,
    stored_node_number,
    write_node_number,
)
from meridian_hotpath.journal import segment_paths
from meridian_hotpath.orderflow import synthetic_flow
from meridian_hotpath.recovery import (
    RecoveryError,
    engine_checksum,
    journal_dir,
    recover,
    snapshot_dir,
    verify,
)
from tests.unit.hotpath.conftest import StartNode
from tests.unit.hotpath.datadir import build_data_dir, fresh_engine

Capture = pytest.CaptureFixture[str]
INPUTS = list(synthetic_flow(seed=23, count=300))


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def fills_of(answers: list[list[Message]]) -> list[Fill]:
    return [message for answer in answers for message in answer if isinstance(message, Fill)]


# ---- the identity file --------------------------------------------------------------------------


def test_a_new_data_dir_takes_the_requested_number_and_keeps_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    assert claim_node_number(data_dir, 7) == 7
    assert json.loads((data_dir / IDENTITY_FILE).read_text()) == {"node_number": 7}
    assert claim_node_number(data_dir, None) == 7  # without the flag: the stored number
    assert claim_node_number(data_dir, 7) == 7
    assert [p.name for p in data_dir.iterdir()] == [IDENTITY_FILE]  # no temporary left behind


def test_without_a_number_a_new_data_dir_is_node_0(tmp_path: Path) -> None:
    assert claim_node_number(tmp_path, None) == 0
    assert stored_node_number(tmp_path) == 0


def test_another_number_is_refused_and_the_identity_is_left_alone(tmp_path: Path) -> None:
    write_node_number(tmp_path, 7)
    before = (tmp_path / IDENTITY_FILE).read_bytes()
    with pytest.raises(NodeNumberMismatchError, match="belongs to node number 7, not 8"):
        claim_node_number(tmp_path, 8)
    assert (tmp_path / IDENTITY_FILE).read_bytes() == before


def test_a_data_dir_with_state_but_no_identity_was_node_0(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS[:20])
    with pytest.raises(NodeNumberMismatchError, match="numbered as node 0"):
        claim_node_number(tmp_path, 7)
    assert stored_node_number(tmp_path) is None
    assert claim_node_number(tmp_path, None) == 0
    assert stored_node_number(tmp_path) == 0


@pytest.mark.parametrize(
    "text", ["", "{", "[7]", '{"node_number": -1}', '{"node_number": 65536}', '{"node_number": "1"}']
)
def test_a_malformed_identity_is_an_error(tmp_path: Path, text: str) -> None:
    (tmp_path / IDENTITY_FILE).write_text(text)
    with pytest.raises(NodeIdentityError):
        claim_node_number(tmp_path, None)
    with pytest.raises(RecoveryError):
        recover(tmp_path, DEFAULT_INSTRUMENTS)
    assert verify(tmp_path, DEFAULT_INSTRUMENTS).problems


# ---- recovery, verify and replay number trades as the node did ------------------------------------


def test_replay_from_the_journal_alone_numbers_trades_from_the_stored_base(tmp_path: Path) -> None:
    built = build_data_dir(tmp_path, INPUTS, node_number=7)
    replayed: list[bytes] = []
    engine, report = recover(tmp_path, DEFAULT_INSTRUMENTS, on_answers=replayed.append)
    assert (report.snapshot_seq, report.replayed) == (None, 300)
    trades = fills_in(b"".join(replayed))
    assert trades, "the flow trades"
    base = trade_id_base(7)
    assert [f.trade_id for f in trades] == list(range(base + 1, base + len(trades) + 1))
    assert engine.trade_id == built.trade_id
    assert engine.checksum() == built.checksum() == fresh_engine(INPUTS, node_number=7).checksum()


def test_recovery_hands_over_the_answers_replayed_after_the_snapshot(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={200}, node_number=3)
    replayed: list[bytes] = []
    recover(tmp_path, DEFAULT_INSTRUMENTS, on_answers=replayed.append)
    engine = fresh_engine(INPUTS[:200], node_number=3)
    expected = [message for request in INPUTS[200:] for message in engine.process(request)]
    assert [message for message, _ in decode_stream(b"".join(replayed))[0]] == expected
    assert fills_in(b"".join(replayed)), "the replayed part trades"


def test_verify_checks_snapshots_against_a_replay_numbered_as_the_node(tmp_path: Path) -> None:
    build_data_dir(tmp_path, INPUTS, snapshot_at={100, 250}, node_number=9)
    report = verify(tmp_path, DEFAULT_INSTRUMENTS)
    assert (report.problems, report.snapshots_checked) == ([], 2)
    assert report.checksum == fresh_engine(INPUTS, node_number=9).checksum()


def test_replay_prints_the_checksum_of_the_numbered_state(tmp_path: Path, capsys: Capture) -> None:
    build_data_dir(tmp_path, INPUTS, node_number=9)
    assert exit_code(["replay", "--data-dir", str(tmp_path), "--to-seq", "150"]) == 0
    expected = fresh_engine(INPUTS[:150], node_number=9)
    assert f"seq 150 checksum {expected.checksum()}" in capsys.readouterr().out


# ---- serve --------------------------------------------------------------------------------------


def test_serve_with_another_number_exits_2_and_touches_nothing(tmp_path: Path, capsys: Capture) -> None:
    build_data_dir(tmp_path, INPUTS[:50], node_number=7)
    segment = segment_paths(journal_dir(tmp_path))[-1]
    with open(segment, "ab") as handle:
        handle.write(b"\x50\x00\x00\x00\x33")  # a torn tail that a start would truncate
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert (
        exit_code(["serve", "--data-dir", str(tmp_path), "--port", "0", "--no-auth", "--node-number", "8"])
        == 2
    )
    assert "refusing to start: data dir" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("number", ["-1", "65536", "x"])
def test_a_node_number_outside_16_bits_is_a_usage_error(tmp_path: Path, number: str) -> None:
    assert (
        exit_code(["serve", "--data-dir", str(tmp_path), "--port", "0", "--no-auth", "--node-number", number])
        == 2
    )


def test_a_node_restarted_from_its_journal_alone_continues_its_trade_ids(
    start_node: StartNode, tmp_path: Path
) -> None:
    base = trade_id_base(7)
    node = start_node(node_number=7)
    client = HotpathClient("127.0.0.1", node.port)
    client.submit("s1", "maker", "AAPL", Side.SELL, 10, 19000)
    first = fills_of([client.submit("b1", "taker", "AAPL", Side.BUY, 4, 19000).messages])
    assert [f.trade_id for f in first] == [base + 1]
    assert node_number_of(first[0].trade_id) == 7
    node.stop()
    shutil.rmtree(snapshot_dir(tmp_path / "node"))  # the final snapshot: gone, the journal must do
    again = start_node()  # no flag: the stored number
    assert (again.node.node_number, again.node.recovery.snapshot_seq) == (7, None)
    client = HotpathClient("127.0.0.1", again.port)
    second = fills_of([client.submit("b2", "taker", "AAPL", Side.BUY, 4, 19000).messages])
    assert [(f.trade_id, execution_id(f.trade_id)) for f in second] == [(base + 2, "7-2")]


# ---- the archive carries the number to the recovery region ---------------------------------------


@pytest.mark.parametrize("number", [None, 7])
def test_a_restore_from_the_archive_numbers_trades_as_the_primary_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int | None
) -> None:
    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
    ):
        monkeypatch.setenv(name, value)
    primary = build_data_dir(tmp_path / "primary", INPUTS, node_number=number)  # journal only: no snapshot
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        ship(tmp_path / "primary", s3, "archive", "nodes/a", include_active=True)
        again = ship(tmp_path / "primary", s3, "archive", "nodes/a", include_active=True)
        assert again.uploaded == []
        result = restore(s3, "archive", "nodes/a", tmp_path / "secondary")
    assert (result.seq, result.snapshot_seq) == (300, None)
    assert result.checksum == engine_checksum(primary)
    assert stored_node_number(tmp_path / "secondary") == number
    assert claim_node_number(tmp_path / "secondary", number) == (number or 0)
