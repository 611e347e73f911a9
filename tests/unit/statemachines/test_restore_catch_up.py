"""The engine step waits for the archive to hold an old primary that still answers (a failback, a
drill, a partial outage) and for that node's sequence to stop moving after the halt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbook_tasks import restore

from meridian.client import HotpathUnavailable
from meridian.protocol import Snapshot
from meridian_hotpath.archive import ship
from tests.s3 import S3_BUCKET as BUCKET
from tests.unit.statemachines.trading_data import write_data_dir

PREFIX = "shards/a"


class OldPrimary:
    """A node answering the given seqs in turn (the last one from then on); None: it stops answering."""

    def __init__(self, *seqs: int | None) -> None:
        self.seqs, self.asked = list(seqs), 0

    def snapshot(self, symbol: str = "") -> Snapshot:
        seq = self.seqs[min(self.asked, len(self.seqs) - 1)]
        self.asked += 1
        if seq is None:
            raise HotpathUnavailable("connection refused")
        return Snapshot(0, seq, 0)


class Clock:
    """Time that moves only when the code under test sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.now, self.sleeps, self.on_sleep = 100.0, 0, on_sleep

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        self.on_sleep(self.sleeps)


def _archive(tmp_path: Path, s3: Any, orders: int) -> None:
    node = tmp_path / f"node-{orders}"
    write_data_dir(node, orders=orders, snapshot_at=(10,), segment_bytes=800)
    ship(node, s3, BUCKET, PREFIX, include_active=True)


def _wait(s3: Any, old: Any, clock: Clock, timeout_s: float = 30.0) -> dict[str, Any]:
    seen: dict[str, Any] = restore.await_archive(
        s3,
        BUCKET,
        PREFIX,
        old,
        timeout_s,
        settle_s=2.0,
        poll_s=0.5,
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    return seen


def test_the_archived_seq_is_the_newest_segment_s_last_record(tmp_path: Path, s3: Any) -> None:
    assert restore.archived_seq(s3, BUCKET, PREFIX) == 0
    _archive(tmp_path, s3, 30)
    assert restore.archived_seq(s3, BUCKET, PREFIX) == 30


def test_a_settled_node_the_archive_holds_is_waited_for_only_the_settle_time(tmp_path: Path, s3: Any) -> None:
    _archive(tmp_path, s3, 30)
    clock = Clock()
    seen = _wait(s3, OldPrimary(30), clock)
    assert seen == {"old_primary_seq": 30, "archived_seq": 30, "waited_seconds": 2.0}


def test_records_landing_after_the_halt_are_waited_for_until_archived(tmp_path: Path, s3: Any) -> None:
    _archive(tmp_path, s3, 30)
    # Two orders past their checks when the halt replicated land at the first look; their records
    # reach the archive two polls later.
    clock = Clock(lambda n: _archive(tmp_path, s3, 32) if n == 3 else None)
    seen = _wait(s3, OldPrimary(30, 32), clock)
    assert (seen["old_primary_seq"], seen["archived_seq"]) == (32, 32)
    assert "behind" not in seen
    assert seen["waited_seconds"] >= 2.5  # settled: 2 s after the seq last moved (at 0.5 s)


def test_an_archive_that_does_not_catch_up_is_reported_behind(tmp_path: Path, s3: Any) -> None:
    _archive(tmp_path, s3, 30)
    seen = _wait(s3, OldPrimary(34), Clock(), timeout_s=5.0)
    assert seen["behind"] == 4
    assert seen["waited_seconds"] == 5.0


def test_a_node_that_stops_answering_has_stopped_moving(tmp_path: Path, s3: Any) -> None:
    _archive(tmp_path, s3, 30)
    clock = Clock()
    seen = _wait(s3, OldPrimary(30, None), clock)
    assert (seen["old_primary_seq"], seen["archived_seq"], seen["waited_seconds"]) == (30, 30, 0.5)


def test_no_old_primary_or_one_that_is_down_is_not_waited_for(s3: Any) -> None:
    clock = Clock()
    assert "skipped" in _wait(s3, None, clock)
    assert "does not answer" in _wait(s3, OldPrimary(None), clock)["skipped"]
    assert clock.sleeps == 0
