"""Rebuild engine state from disk: newest valid snapshot, then replay of the later journal records.

The same path serves three callers: the node on startup (to the end of the journal, cutting off a
torn tail), point-in-time recovery (``to_seq``: newest valid snapshot at or before it, replay up to
it), and ``verify`` (replay everything and check every snapshot against the replayed state).

A replay from the journal's start numbers its trades from the data directory's node number
(``identity``), as the node did, so trade ids come out the same however the state is rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from meridian.domain import Instrument
from meridian.executions import trade_id_base
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.identity import NodeIdentityError, data_dir_node_number
from meridian_hotpath.journal import (
    JournalCorruptError,
    JournalScan,
    TornTail,
    journal_first_seq,
    read_journal,
    replay_journal,
    truncate_torn_tail,
)
from meridian_hotpath.snapshot import CHECKSUM_MASK, InvalidSnapshotError, SnapshotStore

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
SNAPSHOT_DIR = "snapshots"


class RecoveryError(Exception):
    """The data directory cannot produce the requested state."""


@dataclass(slots=True)
class RecoveryReport:
    seq: int = 0
    snapshot_seq: int | None = None
    replayed: int = 0
    skipped_snapshots: list[str] = field(default_factory=list)
    torn_tail: TornTail | None = None
    journal_last_seq: int = 0

    def lines(self) -> list[str]:
        found = [f"recovered seq {self.seq}: snapshot {self.snapshot_seq}, replayed {self.replayed}"]
        found += [f"skipped invalid snapshot {reason}" for reason in self.skipped_snapshots]
        if self.torn_tail is not None:
            found.append(self.torn_tail.describe())
        return found


def journal_dir(data_dir: Path) -> Path:
    return data_dir / JOURNAL_DIR


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOT_DIR


def engine_checksum(engine: MatchingEngine) -> int:
    return engine.checksum() & CHECKSUM_MASK


def empty_engine(data_dir: Path, instruments: Iterable[Instrument]) -> MatchingEngine:
    """The engine before the journal's first record: no orders, trade ids from the node's base."""
    try:
        number = data_dir_node_number(data_dir)
    except NodeIdentityError as exc:
        raise RecoveryError(str(exc)) from None
    return MatchingEngine(instruments, trade_id_base=trade_id_base(number))


def _newest_valid_snapshot(
    store: SnapshotStore, to_seq: int | None, report: RecoveryReport
) -> MatchingEngine | None:
    for candidate in reversed(store.files()):
        if to_seq is not None and candidate.seq > to_seq:
            continue
        try:
            loaded = store.load(candidate)
            engine = MatchingEngine.restore(loaded.payload)
            if engine.seq != loaded.seq:
                raise InvalidSnapshotError(candidate.path, f"restored engine is at seq {engine.seq}")
            if engine_checksum(engine) != loaded.checksum:
                raise InvalidSnapshotError(candidate.path, "restored state does not match its checksum")
        except InvalidSnapshotError as exc:
            report.skipped_snapshots.append(str(exc))
            log.warning("skipping invalid snapshot %s", exc)
            continue
        except Exception as exc:  # a payload the engine cannot restore is just another bad snapshot
            report.skipped_snapshots.append(f"{candidate.path.name}: restore failed: {exc!r}")
            log.warning("skipping snapshot %s: restore failed: %r", candidate.path.name, exc)
            continue
        report.snapshot_seq = loaded.seq
        return engine
    return None


def recover(
    data_dir: Path,
    instruments: Iterable[Instrument],
    to_seq: int | None = None,
    repair: bool = False,
    on_answers: Callable[[bytes], object] | None = None,
) -> tuple[MatchingEngine, RecoveryReport]:
    """State as of ``to_seq`` (default: the last intact journal record).

    ``repair`` truncates a torn journal tail (the node does this on startup; read-only tools don't).
    ``on_answers`` gets the encoded answers of the replayed records (the journal's follower
    re-publishes the trades among them). The replay runs in the native core, record after record.
    Raises ``JournalCorruptError`` for damage inside the journal and ``RecoveryError`` when the
    requested seq is beyond the journal or the journal does not reach back to the snapshot used.
    """
    report = RecoveryReport()
    store = SnapshotStore(snapshot_dir(data_dir))
    engine = _newest_valid_snapshot(store, to_seq, report) or empty_engine(data_dir, instruments)
    start_seq = engine.seq
    first = journal_first_seq(journal_dir(data_dir))
    if first is not None and first > engine.seq + 1:
        raise RecoveryError(f"journal resumes at seq {first} but the state is at seq {engine.seq}")
    scan = replay_journal(journal_dir(data_dir), engine, to_seq, on_answers)
    report.replayed = engine.seq - start_seq
    if to_seq is None or engine.seq < to_seq:
        # Only a complete pass sees the whole journal, so only then is its tail known.
        report.torn_tail = scan.torn_tail
        report.journal_last_seq = scan.last_seq
    if to_seq is None and scan.last_seq < engine.seq:
        # The snapshot is ahead of the durable journal: records it covers were lost, and appending
        # after them would leave a gap that no later replay could cross.
        raise RecoveryError(f"journal ends at seq {scan.last_seq}, before the snapshot's seq {engine.seq}")
    if to_seq is not None and engine.seq != to_seq:
        raise RecoveryError(f"cannot reach seq {to_seq}: the journal ends at seq {engine.seq}")
    if repair and report.torn_tail is not None:
        log.warning("truncating %s", report.torn_tail.describe())
        truncate_torn_tail(report.torn_tail)
    report.seq = engine.seq
    return engine, report


@dataclass(slots=True)
class VerifyReport:
    last_good_seq: int = 0
    book_checksums: dict[str, int] = field(default_factory=dict)
    checksum: int = 0
    snapshots_checked: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def verify(data_dir: Path, instruments: Iterable[Instrument]) -> VerifyReport:
    """Check every journal record and snapshot without modifying anything.

    The journal is replayed from its start (from the oldest valid snapshot when old segments were
    pruned); each snapshot must be intact and match the replayed state at its seq. A torn tail is a
    warning (the node cuts it off on start); anything else is a problem.
    """
    report = VerifyReport()
    store = SnapshotStore(snapshot_dir(data_dir))
    snapshots = {}
    for candidate in store.files():
        try:
            snapshots[candidate.seq] = store.load(candidate)
        except InvalidSnapshotError as exc:
            report.problems.append(f"invalid snapshot {exc}")
    scan = JournalScan(0, 0, None)
    try:
        engine = empty_engine(data_dir, instruments)
    except RecoveryError as exc:
        report.problems.append(str(exc))
        return report
    try:
        records = read_journal(journal_dir(data_dir), 0, scan)
        first = next(records, None)
        if first is not None and first.seq > 1:
            # Older segments were pruned (segment and snapshot seqs need not line up): replay from
            # the oldest snapshot the remaining journal reaches back to; records it covers are
            # still read, so their CRCs are checked.
            reachable = sorted(seq for seq in snapshots if seq >= first.seq - 1)
            if not reachable:
                raise RecoveryError(f"journal starts at seq {first.seq} and no snapshot precedes it")
            engine = MatchingEngine.restore(snapshots[reachable[0]].payload)
        for record in chain([] if first is None else [first], records):
            if record.seq <= engine.seq:
                continue
            engine.process(record.request())
            snapshot = snapshots.get(engine.seq)
            if snapshot is not None:
                report.snapshots_checked += 1
                if snapshot.checksum != engine_checksum(engine):
                    report.problems.append(f"snapshot {snapshot.path.name} differs from the journal's state")
    except (JournalCorruptError, RecoveryError) as exc:
        report.problems.append(str(exc))
    if scan.torn_tail is not None:
        report.warnings.append(scan.torn_tail.describe() + "; the node truncates it on start")
    beyond = [seq for seq in snapshots if seq > engine.seq]
    report.problems += [f"snapshot at seq {seq} is beyond the journal's last good seq" for seq in beyond]
    report.last_good_seq = engine.seq
    report.checksum = engine_checksum(engine)
    report.book_checksums = engine.book_checksums()
    return report
