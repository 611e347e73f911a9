"""Ship a node's journal and snapshots to S3; rebuild a data dir from S3, verified end to end.

Layout under ``s3://<bucket>/<prefix>/`` (the bucket replicates to the secondary region)::

    journal/journal-<first seq>.log     a segment: sealed ones never change once shipped; the
                                         active one is shipped as its durable prefix when asked
    snapshots/snapshot-<seq>.snap
    node.json                           the node's number (``identity``): a replay from the
                                         journal's start numbers its trades as the primary did

Every object carries the SHA-256 of its bytes (user metadata ``sha256``), and a segment its
``first-seq``/``last-seq``. Restoring checks each download against its SHA-256, then lets recovery
check every snapshot (CRC32C and engine checksum) and every journal record (CRC32C) it uses, so a
restore either reproduces the state the primary made durable or fails saying why:
:class:`ArchiveChecksumError` for damaged bytes, :class:`ArchiveRestoreError` for an archive that
cannot reach the state asked for (nothing shipped, a missing segment, a seq beyond the journal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from meridian.aws_clients import error_code
from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian_hotpath.identity import IDENTITY_FILE, NodeIdentityError, identity_path, stored_node_number
from meridian_hotpath.journal import (
    SEGMENT_PREFIX,
    SEGMENT_SUFFIX,
    JournalCorruptError,
    scan_segment,
    segment_first_seq,
    segment_paths,
)
from meridian_hotpath.recovery import RecoveryError, engine_checksum, journal_dir, recover, snapshot_dir
from meridian_hotpath.retention import PruneReport, prune
from meridian_hotpath.snapshot import SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX, SnapshotStore

log = logging.getLogger(__name__)

JOURNAL_FOLDER = "journal"
SNAPSHOT_FOLDER = "snapshots"
SHA256_KEY = "sha256"
_CHUNK = 1024 * 1024


class ArchiveError(Exception):
    """Base of the archive's errors."""


class ArchiveChecksumError(ArchiveError):
    """Archived bytes do not match their recorded SHA-256, or fail the CRC/engine checksums."""


class ArchiveRestoreError(ArchiveError):
    """The archive cannot produce the requested state."""


@dataclass(slots=True)
class ShipReport:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    key: str
    seq: int  # a segment's first seq, a snapshot's seq
    size: int


@dataclass(slots=True)
class RestoreResult:
    """What a restore produced; ``seq`` is the last durable sequence the archive holds."""

    seq: int
    checksum: int
    book_checksums: dict[str, int]
    snapshot_seq: int | None
    replayed: int
    objects: list[str]
    bytes_downloaded: int
    torn_tail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(prefix: str, folder: str, name: str) -> str:
    return "/".join(part for part in (prefix.strip("/"), folder, name) if part)


# ---- shipping ------------------------------------------------------------------------------------


def _stored_sha256(s3: Any, bucket: str, key: str) -> str | None:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    value = head.get("Metadata", {}).get(SHA256_KEY)
    return str(value) if value else None


def _put(s3: Any, bucket: str, key: str, data: bytes, metadata: dict[str, str], report: ShipReport) -> None:
    digest = sha256_of(data)
    if _stored_sha256(s3, bucket, key) == digest:
        report.unchanged.append(key)
        return
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        Metadata={SHA256_KEY: digest, **metadata},
        ChecksumAlgorithm="SHA256",
    )
    report.uploaded.append(key)
    report.bytes_uploaded += len(data)


def ship(data_dir: Path, s3: Any, bucket: str, prefix: str, include_active: bool = False) -> ShipReport:
    """Upload every sealed segment and snapshot not yet in the archive (by SHA-256).

    ``include_active`` also ships the active segment's intact records (without a torn or
    in-progress tail): what a failover drill needs to lose nothing that was acknowledged.
    """
    report = ShipReport()
    segments = segment_paths(journal_dir(data_dir))
    for index, path in enumerate(segments):
        sealed = index < len(segments) - 1
        if not sealed and not include_active:
            continue
        first = segment_first_seq(path)
        scan = scan_segment(path, first)
        if sealed and scan.defect is not None:
            raise ArchiveChecksumError(f"sealed segment {path.name} is damaged: {scan.defect}")
        if not scan.records:
            continue
        data = path.read_bytes()[: scan.good_end]
        last = scan.records[-1].seq
        metadata = {"first-seq": str(first), "last-seq": str(last), "sealed": str(sealed).lower()}
        _put(s3, bucket, _key(prefix, JOURNAL_FOLDER, path.name), data, metadata, report)
    store = SnapshotStore(snapshot_dir(data_dir))
    for snapshot in store.files():
        loaded = store.load(snapshot)  # never ship a snapshot that fails its own CRC
        data = snapshot.path.read_bytes()
        metadata = {"seq": str(loaded.seq), "engine-checksum": str(loaded.checksum)}
        _put(s3, bucket, _key(prefix, SNAPSHOT_FOLDER, snapshot.path.name), data, metadata, report)
    if stored_node_number(data_dir) is not None:
        identity = identity_path(data_dir).read_bytes()
        _put(s3, bucket, _key(prefix, "", IDENTITY_FILE), identity, {}, report)
    return report


def ship_and_prune(
    data_dir: Path, s3: Any, bucket: str, prefix: str, keep_snapshots: int, include_active: bool = False
) -> tuple[ShipReport, PruneReport]:
    """Ship, then delete local files the node no longer needs that this ship found in the archive
    with the same SHA-256 (uploaded now or already there): see ``retention``."""
    shipped = ship(data_dir, s3, bucket, prefix, include_active)
    in_archive = {key.rsplit("/", 1)[-1] for key in (*shipped.uploaded, *shipped.unchanged)}
    return shipped, prune(data_dir, keep_snapshots, shipped=lambda path: path.name in in_archive)


# ---- restoring -----------------------------------------------------------------------------------


def _listed(
    s3: Any, bucket: str, prefix: str, folder: str, name_prefix: str, suffix: str
) -> Iterator[ArchivedObject]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=_key(prefix, folder, name_prefix)):
        for item in page.get("Contents", []):
            name = str(item["Key"]).rsplit("/", 1)[-1]
            digits = name[len(name_prefix) : -len(suffix)]
            if name.startswith(name_prefix) and name.endswith(suffix) and digits.isdigit():
                yield ArchivedObject(str(item["Key"]), int(digits), int(item.get("Size", 0)))


def archived_segments(s3: Any, bucket: str, prefix: str) -> list[ArchivedObject]:
    return sorted(
        _listed(s3, bucket, prefix, JOURNAL_FOLDER, SEGMENT_PREFIX, SEGMENT_SUFFIX), key=lambda o: o.seq
    )


def archived_snapshots(s3: Any, bucket: str, prefix: str) -> list[ArchivedObject]:
    return sorted(
        _listed(s3, bucket, prefix, SNAPSHOT_FOLDER, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX), key=lambda o: o.seq
    )


def _last_seq(s3: Any, bucket: str, key: str) -> int:
    head = s3.head_object(Bucket=bucket, Key=key)
    value = head.get("Metadata", {}).get("last-seq", "")
    if not str(value).isdigit():
        raise ArchiveChecksumError(f"{key} carries no last-seq; it was not shipped by the archive")
    return int(value)


def _download_verified(s3: Any, bucket: str, key: str, target: Path) -> tuple[int, dict[str, str]]:
    """Download ``key`` to ``target``; ArchiveChecksumError unless its bytes match their SHA-256.

    Answers the size and the object's metadata.
    """
    response = s3.get_object(Bucket=bucket, Key=key)
    metadata: dict[str, str] = dict(response.get("Metadata", {}))
    expected = metadata.get(SHA256_KEY)
    if not expected:
        raise ArchiveChecksumError(f"{key} carries no SHA-256; it was not shipped by the archive")
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        for chunk in response["Body"].iter_chunks(_CHUNK):
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != expected:
        target.unlink()
        raise ArchiveChecksumError(
            f"{key}: SHA-256 {digest.hexdigest()} does not match the recorded {expected}"
        )
    return size, metadata


def _check_contiguous(ranges: list[tuple[str, int, int]]) -> None:
    """Each segment must start right after the previous one ends: a gap is a segment not yet
    replicated (or lost), and replay must not jump it."""
    for (_, _, previous_last), (key, first, _) in pairwise(ranges):
        if first != previous_last + 1:
            raise ArchiveRestoreError(
                f"journal gap: records {previous_last + 1}..{first - 1} are not in the archive (before {key})"
            )


def plan_restore(
    segments: list[ArchivedObject], snapshots: list[ArchivedObject], to_seq: int | None
) -> tuple[ArchivedObject | None, list[ArchivedObject]]:
    """The snapshot to start from and the segments to replay after it."""
    usable = [s for s in snapshots if to_seq is None or s.seq <= to_seq]
    snapshot = usable[-1] if usable else None
    start = snapshot.seq + 1 if snapshot is not None else 1
    # Every segment from the one holding ``start`` onwards (a segment is named by its first seq).
    first_needed = max((i for i, s in enumerate(segments) if s.seq <= start), default=0)
    needed = segments[first_needed:]
    if to_seq is not None:
        needed = [s for s in needed if s.seq <= to_seq]
    return snapshot, needed


def restore(
    s3: Any,
    bucket: str,
    prefix: str,
    data_dir: Path,
    instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS,
    to_seq: int | None = None,
) -> RestoreResult:
    """Rebuild ``data_dir`` (empty or absent) from the archive, to ``to_seq`` or its last durable record."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ArchiveRestoreError(f"{data_dir} is not empty; restore into a fresh directory")
    segments, snapshots = archived_segments(s3, bucket, prefix), archived_snapshots(s3, bucket, prefix)
    if not segments and not snapshots:
        raise ArchiveRestoreError(f"nothing archived under s3://{bucket}/{prefix}")
    snapshot, needed = plan_restore(segments, snapshots, to_seq)
    if (
        snapshot is not None
        and needed == segments[-1:]
        and _last_seq(s3, bucket, needed[0].key) <= snapshot.seq
    ):
        needed = []  # the snapshot is newer than every archived record: the journal restarts after it
    downloaded: list[str] = []
    size = 0
    if snapshot is not None:
        name = snapshot.key.rsplit("/", 1)[-1]
        size += _download_verified(s3, bucket, snapshot.key, snapshot_dir(data_dir) / name)[0]
        downloaded.append(snapshot.key)
    ranges: list[tuple[str, int, int]] = []
    for segment in needed:
        name = segment.key.rsplit("/", 1)[-1]
        got, metadata = _download_verified(s3, bucket, segment.key, journal_dir(data_dir) / name)
        size += got
        downloaded.append(segment.key)
        ranges.append((segment.key, segment.seq, int(metadata.get("last-seq", segment.seq))))
    _check_contiguous(ranges)
    if snapshot is None and ranges and ranges[0][1] != 1:
        raise ArchiveRestoreError(
            f"the archived journal starts at seq {ranges[0][1]} and no snapshot precedes it"
        )
    journal_dir(data_dir).mkdir(parents=True, exist_ok=True)
    snapshot_dir(data_dir).mkdir(parents=True, exist_ok=True)
    size += _restore_identity(s3, bucket, prefix, data_dir, downloaded)
    try:
        engine, report = recover(data_dir, instruments, to_seq=to_seq)
    except JournalCorruptError as exc:
        raise ArchiveChecksumError(f"archived journal is damaged: {exc}") from exc
    except RecoveryError as exc:
        raise ArchiveRestoreError(str(exc)) from exc
    if report.skipped_snapshots:
        raise ArchiveChecksumError(
            "archived snapshot failed verification: " + "; ".join(report.skipped_snapshots)
        )
    log.info("restored seq %d from %d objects (%d bytes)", engine.seq, len(downloaded), size)
    return RestoreResult(
        seq=engine.seq,
        checksum=engine_checksum(engine),
        book_checksums=engine.book_checksums(),
        snapshot_seq=report.snapshot_seq,
        replayed=report.replayed,
        objects=downloaded,
        bytes_downloaded=size,
        torn_tail=report.torn_tail.describe() if report.torn_tail is not None else None,
    )


def _restore_identity(s3: Any, bucket: str, prefix: str, data_dir: Path, downloaded: list[str]) -> int:
    """Download the node's number, if the archive holds one (a node from before numbers has none:
    it was node 0, which recovery assumes without it). Answers the bytes downloaded."""
    key = _key(prefix, "", IDENTITY_FILE)
    if _stored_sha256(s3, bucket, key) is None:
        return 0
    size = _download_verified(s3, bucket, key, identity_path(data_dir))[0]
    try:
        stored_node_number(data_dir)
    except NodeIdentityError as exc:
        raise ArchiveChecksumError(f"archived {IDENTITY_FILE} is unreadable: {exc}") from exc
    downloaded.append(key)
    return size


def restore_to_temporary(
    s3: Any, bucket: str, prefix: str, to_seq: int | None = None, parent: Path | None = None
) -> tuple[RestoreResult, Path]:
    """Restore into a new temporary directory (``/tmp`` in Lambda); the caller owns the directory."""
    data_dir = Path(tempfile.mkdtemp(prefix="meridian-restore-", dir=parent))
    return restore(s3, bucket, prefix, data_dir, to_seq=to_seq), data_dir


# ---- command line --------------------------------------------------------------------------------


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    import boto3  # noqa: PLC0415 - only the command line needs a default client

    parser = argparse.ArgumentParser(
        prog="python -m meridian_hotpath.archive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("ship", "restore"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--include-active", action="store_true", help="ship: the active segment too")
    parser.add_argument("--to-seq", type=int, help="restore: stop at this seq (point in time)")
    parser.add_argument(
        "--prune-keep",
        type=_at_least_one,
        metavar="K",
        help="ship: then delete local snapshots older than the newest K valid ones, and the journal "
        "segments before them, once the archive holds them",
    )
    args = parser.parse_args(argv)
    s3 = boto3.client("s3")
    try:
        if args.command == "ship" and args.prune_keep is not None:
            shipped, pruned = ship_and_prune(
                args.data_dir, s3, args.bucket, args.prefix, args.prune_keep, args.include_active
            )
            print(json.dumps({**asdict(shipped), "pruned": asdict(pruned)}))
        elif args.command == "ship":
            shipped = ship(args.data_dir, s3, args.bucket, args.prefix, args.include_active)
            print(json.dumps(asdict(shipped)))
        else:
            print(
                json.dumps(restore(s3, args.bucket, args.prefix, args.data_dir, to_seq=args.to_seq).as_dict())
            )
    except ArchiveError as exc:
        print(f"error: {exc}")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
