"""The journal's syncer thread and the writer's path through it (write_records)."""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.protocol import NewOrder, encode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter, read_journal, segment_paths
from meridian_hotpath.journal_sync import SYNC_BUCKET_UPPER_SECONDS, JournalSyncer
from meridian_hotpath.recovery import recover
from tests.unit.hotpath.node_thread import WAIT


def wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], WAIT)
    assert readable, "the syncer signalled"


def test_the_syncer_makes_what_was_written_durable_and_says_so(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "segment", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    eventfd = os.eventfd(0, os.EFD_NONBLOCK)
    pipe_read, pipe_write = os.pipe2(os.O_NONBLOCK)
    shared = bytearray(8)
    syncer = JournalSyncer(fd, dir_fd, 10)
    syncer.notify(eventfd)
    syncer.notify(pipe_write)
    syncer.share_durable(shared)
    assert int.from_bytes(shared, "little") == 10
    syncer.start()
    with pytest.raises(RuntimeError):
        syncer.notify(eventfd)  # too late: the thread reads its fds
    os.write(fd, b"x" * 100)
    syncer.written(11)
    wait_readable(eventfd)
    wait_readable(pipe_read)
    while syncer.durable_seq < 11:
        wait_readable(eventfd)
        os.eventfd_read(eventfd)
    assert int.from_bytes(shared, "little") == 11
    syncs, seconds, last, longest, buckets = syncer.stats()
    assert syncs >= 1
    assert sum(buckets) == syncs
    assert len(buckets) == len(SYNC_BUCKET_UPPER_SECONDS)
    assert 0 < last <= longest <= seconds
    syncer.written(9)  # never backwards
    assert syncer.written_seq == 11
    assert syncer.stop() == 11
    assert syncer.stop() == 11  # idempotent
    for handle in (fd, dir_fd, eventfd, pipe_read, pipe_write):
        os.close(handle)


def test_a_rotation_hands_the_old_segment_to_the_syncer_which_closes_it(tmp_path: Path) -> None:
    old = os.open(tmp_path / "a", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    new = os.open(tmp_path / "b", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    syncer = JournalSyncer(old, dir_fd, 0)
    syncer.start()
    os.write(old, b"old")
    syncer.rotate(new)
    os.write(new, b"new")
    syncer.written(2)
    assert syncer.stop() == 2
    assert syncer.fd == new
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(old)  # closed by the syncer once fsynced
    os.close(new)
    os.close(dir_fd)


def test_write_records_rotates_segments_and_every_record_reads_back(tmp_path: Path) -> None:
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    journal = JournalWriter(tmp_path, 1, segment_bytes=2048)
    journal.start_syncer().start()
    for batch in range(40):
        frames = [
            encode(NewOrder(n, f"c{n}", "a", "AAPL", 1 + n % 2, 1, 1, 0, 1, 19000 + n % 3))
            for n in range(batch * 5 + 1, batch * 5 + 6)
        ]
        engine.feed(b"".join(frames))
        journal.write_records(engine.take_journal(), engine.seq)
    journal.close()
    assert journal.durable_seq == 200
    assert len(segment_paths(tmp_path)) > 5
    assert [record.seq for record in read_journal(tmp_path)] == list(range(1, 201))
    data_dir = tmp_path.parent / "restart"
    (data_dir / "journal").mkdir(parents=True)
    for path in segment_paths(tmp_path):
        (data_dir / "journal" / path.name).write_bytes(path.read_bytes())
    recovered, report = recover(data_dir, DEFAULT_INSTRUMENTS)
    assert (report.replayed, report.torn_tail) == (200, None)
    assert recovered.checksum() == engine.checksum()


def test_records_carry_the_engines_epoch_and_a_replay_refuses_one_that_goes_back(tmp_path: Path) -> None:
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    order = encode(NewOrder(1, "c1", "a", "AAPL", 1, 1, 1, 0, 1, 19000))
    engine.feed(order)
    engine.journal_epoch = 3  # a new leadership term: the records from now on carry it
    engine.feed(encode(NewOrder(2, "c2", "a", "AAPL", 1, 1, 1, 0, 1, 19000)))
    records = engine.take_journal()
    words = [int.from_bytes(records[at : at + 4], "little") for at in (0, 16 + len(order))]
    assert [(word & 0xFFFF, word >> 16) for word in words] == [(len(order), 0), (len(order), 3)]
    replica = MatchingEngine(DEFAULT_INSTRUMENTS)
    assert replica.replay(records)[1:3] == (2, None)
    assert replica.journal_epoch == 3
    older = MatchingEngine(DEFAULT_INSTRUMENTS)
    older.journal_epoch = 4  # it has seen a newer term: records of term 3 after it are refused
    _, applied, defect, _, _ = older.replay(records)
    assert applied == 0
    assert defect == "intact record of epoch 0 after epoch 4"
    restored = MatchingEngine.restore(replica.snapshot())
    assert restored.journal_epoch == 3  # the epoch survives a snapshot


def test_a_paced_syncer_leaves_its_gap_between_syncs_and_unpaced_syncs_at_once(tmp_path: Path) -> None:
    import time  # noqa: PLC0415

    fd = os.open(tmp_path / "segment", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    syncer = JournalSyncer(fd, dir_fd, 0)
    with pytest.raises(ValueError, match="not negative"):
        syncer.pace(-1)
    gap = 0.05
    syncer.pace(gap)
    assert syncer.sync_gap == pytest.approx(gap)
    syncer.start()
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < 0.4:  # a record every millisecond
        seq += 1
        os.write(fd, b"x")
        syncer.written(seq)
        time.sleep(0.001)
    elapsed = time.monotonic() - started
    syncs = syncer.stats()[0]
    # each sync starts at least `gap` after the one before (unpaced, one per record or so)
    assert 1 <= syncs <= elapsed / gap + 1
    syncer.pace(0)  # a standby taking over: its disk is the shard's again, sync at once
    time.sleep(gap)  # the last paced pause is over
    before = syncer.stats()[0]
    for _ in range(5):
        seq += 1
        os.write(fd, b"x")
        syncer.written(seq)
        deadline = time.monotonic() + WAIT
        while syncer.durable_seq < seq and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert syncer.durable_seq == seq
    assert syncer.stats()[0] >= before + 5  # one sync each: no gap between them
    assert syncer.stop() == seq
    os.close(fd)
    os.close(dir_fd)
