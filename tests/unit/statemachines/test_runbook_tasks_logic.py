"""The runbook steps' logic: the RTO clock, the compliance export and its verification, engine restore
points, and the integrity checks across regions."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from runbook_tasks import clock, compliance, integrity, restore

from meridian.client import HotpathUnavailable
from meridian.events import TradeExecuted
from meridian.ledger import record_trade
from meridian.protocol import Snapshot
from meridian_hotpath.archive import ArchiveChecksumError, ship
from tests.s3 import S3_BUCKET as BUCKET
from tests.unit.statemachines.trading_data import write_data_dir

# ---- clock -----------------------------------------------------------------------------------------


def test_elapsed_time_between_the_runbook_timestamps() -> None:
    assert clock.elapsed_seconds("2026-11-25T12:00:00.250Z", "2026-11-25T12:00:04.000+00:00") == 3.75
    with pytest.raises(ValueError, match="before"):
        clock.elapsed_seconds("2026-11-25T12:00:04Z", "2026-11-25T12:00:00Z")
    with pytest.raises(ValueError, match="time zone"):
        clock.parse_timestamp("2026-11-25T12:00:00")


# ---- compliance ------------------------------------------------------------------------------------


def test_the_report_date_is_the_requested_day_or_the_day_before_the_schedule() -> None:
    assert compliance.report_date("2026-11-20", "2026-11-25T00:30:00Z") == date(2026, 11, 20)
    assert compliance.report_date(None, "2026-11-25T00:30:00Z") == date(2026, 11, 24)


def _trades(conn: psycopg.Connection[Any], count: int, day: int = 24) -> None:
    for n in range(1, count + 1):
        trade = TradeExecuted(
            event_id=f"e{day}-{n}",
            occurred_at=datetime(2026, 11, day, 10, n, tzinfo=UTC),
            execution_id=f"x{day}-{n}",
            symbol="AAPL",
            price=Decimal("190.01"),
            quantity=n,
            aggressor_side="SELL",
            buy_order_id="b",
            sell_order_id="s",
            buy_account="a1",
            sell_account="a2",
            buy_client_order_id=f"cb{n}",
            sell_client_order_id=f"cs{n}",
            node_seq=n,
        )
        record_trade(conn, trade)


def test_export_writes_parts_then_a_manifest_and_verification_rereads_everything(
    s3: Any, ledger_conn: psycopg.Connection[Any]
) -> None:
    _trades(ledger_conn, 5)
    _trades(ledger_conn, 2, day=25)
    written = compliance.export_day(
        ledger_conn, s3, BUCKET, "reports", date(2026, 11, 24), "run-1", rows_per_part=2
    )
    assert (written["rows"], written["files"]) == (5, 3)
    assert written["manifest_key"] == "reports/trades/date=2026-11-24/run=run-1/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=written["manifest_key"])["Body"].read())
    assert [f["rows"] for f in manifest["files"]] == [2, 2, 1]
    first = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=manifest["files"][0]["key"])["Body"].read())
    assert [json.loads(line)["quantity"] for line in first.splitlines()] == [1, 2]
    verified = compliance.verify_export(s3, BUCKET, written["manifest_key"], ledger_conn)
    assert (verified.verified, verified.rows, verified.files, verified.problems) == (True, 5, 3, [])


def test_verification_finds_forged_parts_manifests_and_late_trades(
    s3: Any, ledger_conn: psycopg.Connection[Any]
) -> None:
    _trades(ledger_conn, 3)
    written = compliance.export_day(ledger_conn, s3, BUCKET, "", date(2026, 11, 24), "run-2")
    key = written["manifest_key"]
    _trades(ledger_conn, 4)  # one more trade for the day reached the ledger after the export
    late = compliance.verify_export(s3, BUCKET, key, ledger_conn)
    assert not late.verified
    assert "the ledger holds 4 trades" in late.problems[0]
    body = s3.get_object(Bucket=BUCKET, Key=key)
    manifest = json.loads(body["Body"].read())
    manifest["rows"] = 2
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode(), Metadata=body["Metadata"])
    forged = compliance.verify_export(s3, BUCKET, key)
    assert not forged.verified
    assert "manifest.json: SHA-256" in forged.problems[0]


# ---- restore ---------------------------------------------------------------------------------------


def test_restore_points_carry_hex_checksums_and_are_written_beside_the_archive(
    tmp_path: Path, s3: Any
) -> None:
    engine = write_data_dir(tmp_path / "node", orders=30, snapshot_at=(10,), segment_bytes=800)
    ship(tmp_path / "node", s3, BUCKET, "shards/a", include_active=True)
    restored = restore.restore_nodes(s3, BUCKET, ["shards/a"], "exec-7")
    node = restored["nodes"][0]
    assert (restored["seq"], node["seq"], node["snapshot_seq"]) == (30, 30, 10)
    assert node["book_checksums"]["AAPL"] == f"{engine.book_checksums()['AAPL']:016x}"
    point = json.loads(s3.get_object(Bucket=BUCKET, Key="shards/a/restore-points/exec-7.json")["Body"].read())
    assert point["seq"] == 30
    with pytest.raises(ValueError, match="no node archive"):
        restore.restore_nodes(s3, BUCKET, [], "exec-8")


def test_a_damaged_archive_stops_the_restore(tmp_path: Path, s3: Any) -> None:
    write_data_dir(tmp_path / "node", orders=10, snapshot_at=())
    ship(tmp_path / "node", s3, BUCKET, "shards/a", include_active=True)
    key = "shards/a/journal/journal-00000000000000000001.log"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"garbage", Metadata=head["Metadata"])
    with pytest.raises(ArchiveChecksumError):
        restore.restore_nodes(s3, BUCKET, ["shards/a"], "exec-9")


# ---- integrity -------------------------------------------------------------------------------------

RESTORED = {
    "nodes": [{"seq": 12, "book_checksums": {"AAPL": "00000000000000aa"}}],
    "book_checksums": {"AAPL": "00000000000000aa"},
}


class Node:
    def __init__(self, seq: int, checksum: int, down: bool = False) -> None:
        self.answer, self.down = Snapshot(0, seq, checksum), down

    def snapshot(self, symbol: str) -> Snapshot:
        if self.down:
            raise HotpathUnavailable("connection refused")
        return self.answer


def _report(primary: Any, old: Node | None, active: Node | None, lose: bool = False) -> dict[str, Any]:
    old_nodes: Any = {"AAPL": old} if old else {}
    active_nodes: Any = {"AAPL": active} if active else {}
    report = integrity.validate(RESTORED, lambda: (7, 12), primary, old_nodes, active_nodes, lose)
    return {c.name: (c.ok, c.skipped) for c in report.checks} | {"ok": report.ok}


def test_everything_agreeing_passes_every_check() -> None:
    checks = _report(lambda: (7, 12), Node(12, 0xAA), Node(12, 0xAA))
    assert checks == {
        "ledger_trade_count": (True, False),
        "ledger_within_engine": (True, False),
        "old_primary_book:AAPL": (True, False),
        "active_book:AAPL": (True, False),
        "ok": True,
    }


def test_sources_that_are_gone_are_skipped_not_failed() -> None:
    def unreachable() -> tuple[int, int]:
        raise psycopg.OperationalError("no route to host")

    checks = _report(unreachable, Node(0, 0, down=True), None)
    assert checks["ok"]
    assert checks["ledger_trade_count"] == (True, True)
    assert checks["old_primary_book:AAPL"] == (True, True)
    assert checks["active_book:AAPL"] == (True, True)


def test_lost_trades_a_primary_ahead_or_a_different_book_fail() -> None:
    assert _report(lambda: (8, 13), None, None)["ledger_trade_count"] == (False, False)
    assert _report(lambda: (7, 12), Node(14, 0xAA), None)["old_primary_book:AAPL"] == (False, False)
    assert _report(lambda: (7, 12), Node(14, 0xAA), None, lose=True)["old_primary_book:AAPL"] == (True, False)
    assert _report(lambda: (7, 12), None, Node(12, 0xAB))["active_book:AAPL"] == (False, False)
    assert _report(lambda: (7, 12), None, Node(11, 0xAA))["active_book:AAPL"] == (False, False)


def test_a_ledger_ahead_of_the_engine_fails() -> None:
    report = integrity.validate(RESTORED, lambda: (7, 13), None, {}, {})
    assert not report.ok
    assert {c.name for c in report.checks if not c.ok} == {"ledger_within_engine"}
