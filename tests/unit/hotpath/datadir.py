"""Build a node's data directory (journal + snapshots) directly, without a server."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.executions import trade_id_base
from meridian.protocol import encode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.identity import write_node_number
from meridian_hotpath.journal import JournalWriter, StateChange
from meridian_hotpath.recovery import engine_checksum, journal_dir, snapshot_dir
from meridian_hotpath.snapshot import SnapshotStore


def fresh_engine(inputs: Sequence[StateChange], node_number: int = 0) -> MatchingEngine:
    """The reference: a new engine (of node ``node_number``) fed ``inputs`` in order."""
    engine = MatchingEngine(DEFAULT_INSTRUMENTS, trade_id_base=trade_id_base(node_number))
    for request in inputs:
        engine.process(request)
    return engine


def build_data_dir(
    data_dir: Path,
    inputs: Sequence[StateChange],
    snapshot_at: Collection[int] = (),
    batch: int = 7,
    node_number: int | None = None,
) -> MatchingEngine:
    """Journal ``inputs`` (committing every ``batch``) and snapshot at the given seqs; with a
    ``node_number``, write the identity file and number the trades from its base."""
    engine = fresh_engine([], node_number or 0)
    if node_number is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        write_node_number(data_dir, node_number)
    writer = JournalWriter(journal_dir(data_dir), 1, segment_bytes=4096)
    store = SnapshotStore(snapshot_dir(data_dir))
    for request in inputs:
        engine.process(request)
        writer.append(engine.seq, encode(request))
        if engine.seq % batch == 0 or engine.seq in snapshot_at:
            writer.commit()
        if engine.seq in snapshot_at:
            store.write(engine.seq, engine_checksum(engine), engine.snapshot())
    writer.close()
    return engine
