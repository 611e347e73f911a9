"""Local retention: delete the snapshots and journal segments a node no longer needs on its disk.

A node needs, locally, its newest valid snapshots (recovery falls back to an older one when the
newest fails its checks) and every journal segment holding a record after the oldest of those.
Older files only serve point-in-time recovery to earlier sequence numbers, which the archive in S3
serves (``python -m meridian_hotpath.archive restore --to-seq N``). So a file is deleted only once
the archive holds it byte for byte: ``archive ship --prune-keep K`` prunes after a successful
ship, with the shipped objects as the ``shipped`` predicate. The active segment is never touched,
and nothing is deleted when fewer than ``keep_snapshots`` valid snapshots exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from meridian_hotpath.journal import fsync_directory, segment_first_seq, segment_paths
from meridian_hotpath.recovery import journal_dir, snapshot_dir
from meridian_hotpath.snapshot import InvalidSnapshotError, SnapshotStore

DEFAULT_KEEP_SNAPSHOTS = 3


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """What may go: ``keep_from_seq`` is the seq of the oldest snapshot kept (None: keep all)."""

    keep_from_seq: int | None
    snapshots: tuple[Path, ...] = ()
    segments: tuple[Path, ...] = ()


@dataclass(slots=True)
class PruneReport:
    keep_from_seq: int | None = None
    deleted: list[str] = field(default_factory=list)
    not_shipped: list[str] = field(default_factory=list)  # would go, but the archive lacks them
    bytes_freed: int = 0


def plan_prune(data_dir: Path, keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS) -> PrunePlan:
    """The files older than the oldest of the newest ``keep_snapshots`` valid snapshots."""
    if keep_snapshots < 1:
        raise ValueError("keep_snapshots must be at least 1")
    store = SnapshotStore(snapshot_dir(data_dir))
    files = store.files()
    valid: list[int] = []  # indexes into files, newest first
    for index in range(len(files) - 1, -1, -1):
        try:
            store.load(files[index])
        except InvalidSnapshotError:
            continue  # a damaged snapshot neither counts as kept nor protects older ones from going
        valid.append(index)
        if len(valid) == keep_snapshots:
            break
    if len(valid) < keep_snapshots:
        return PrunePlan(None)
    oldest = valid[-1]
    keep_from = files[oldest].seq
    segments = segment_paths(journal_dir(data_dir))
    # A segment can go when the next one starts at or before keep_from + 1: every record it holds
    # is at or before the oldest kept snapshot. The last (active) segment has no next: never goes.
    old_segments = tuple(
        path for path, following in pairwise(segments) if segment_first_seq(following) <= keep_from + 1
    )
    return PrunePlan(keep_from, tuple(f.path for f in files[:oldest]), old_segments)


def prune(
    data_dir: Path,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    shipped: Callable[[Path], bool] | None = None,
) -> PruneReport:
    """Delete what ``plan_prune`` allows and ``shipped`` confirms (every file when it is None).

    Segments go oldest first and stop at the first one the archive lacks, so the local journal
    always stays one contiguous run of segments.
    """
    plan = plan_prune(data_dir, keep_snapshots)
    report = PruneReport(plan.keep_from_seq)
    for group in (plan.segments, plan.snapshots):
        for path in group:
            if shipped is not None and not shipped(path):
                report.not_shipped.append(path.name)
                if group is plan.segments:
                    break
                continue
            size = path.stat().st_size
            path.unlink()
            report.deleted.append(path.name)
            report.bytes_freed += size
    if report.deleted:
        fsync_directory(journal_dir(data_dir))
        fsync_directory(snapshot_dir(data_dir))
    return report
