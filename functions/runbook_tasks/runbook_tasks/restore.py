"""The failover's engine step: rebuild each matching node's state from the replicated archive.

When the old primary's node still answers (a drill, a failback, a partial outage), its state is
what the archive must hold: trading is halted, so its sequence soon stops moving, and the step waits
(bounded) until it has and the archive has caught up with it before restoring, instead of restoring
an archive a shipping interval behind and losing its last records. A node that does not answer is gone: the
archive is what there is.

For every node prefix the archive is restored into a scratch directory (``/tmp`` in Lambda) with
full verification (SHA-256 of every object, CRC32C of every record and snapshot, the engine
checksum of the snapshot used). The verified restore point (seq and checksums) is written next to
the archive (``restore-points/<runbook execution>.json``): the secondary region's nodes start from
exactly that point. Checksums travel as 16-digit hex strings (u64 values do not survive every JSON
reader).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from typing import Any

from meridian.client import HotpathClient, HotpathError
from meridian_hotpath.archive import (
    RestoreResult,
    archived_segments,
    archived_snapshots,
    restore_to_temporary,
)
from meridian_hotpath.snapshot import CHECKSUM_MASK

RESTORE_POINTS = "restore-points"


def hex64(value: int) -> str:
    return f"{value & CHECKSUM_MASK:016x}"


def describe(prefix: str, result: RestoreResult) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "seq": result.seq,
        "checksum": hex64(result.checksum),
        "book_checksums": {symbol: hex64(value) for symbol, value in sorted(result.book_checksums.items())},
        "snapshot_seq": result.snapshot_seq,
        "replayed": result.replayed,
        "objects": len(result.objects),
        "bytes": result.bytes_downloaded,
        "torn_tail": result.torn_tail,
    }


def restore_nodes(
    s3: Any, bucket: str, prefixes: list[str], run_id: str, to_seq: int | None = None
) -> dict[str, Any]:
    """Restore every node's archive; raises the archive's error for the first one that fails."""
    if not prefixes:
        raise ValueError("no node archive prefixes are configured")
    nodes = []
    for prefix in prefixes:
        result, data_dir = restore_to_temporary(s3, bucket, prefix, to_seq)
        shutil.rmtree(data_dir, ignore_errors=True)
        node = describe(prefix, result)
        point_key = "/".join(p for p in (prefix.strip("/"), RESTORE_POINTS, f"{run_id}.json") if p)
        s3.put_object(
            Bucket=bucket,
            Key=point_key,
            Body=json.dumps(node, sort_keys=True).encode(),
            ContentType="application/json",
        )
        node["restore_point"] = point_key
        nodes.append(node)
    books: dict[str, str] = {}
    for node in nodes:
        books.update(node["book_checksums"])
    return {"bucket": bucket, "nodes": nodes, "book_checksums": books, "seq": max(n["seq"] for n in nodes)}


def archived_seq(s3: Any, bucket: str, prefix: str) -> int:
    """The last sequence the archive holds: its newest segment's last record, or its newest snapshot."""
    segments, snapshots = archived_segments(s3, bucket, prefix), archived_snapshots(s3, bucket, prefix)
    last = snapshots[-1].seq if snapshots else 0
    if segments:
        metadata = s3.head_object(Bucket=bucket, Key=segments[-1].key).get("Metadata", {})
        if str(metadata.get("last-seq", "")).isdigit():
            last = max(last, int(metadata["last-seq"]))
    return last


def await_archive(
    s3: Any,
    bucket: str,
    prefix: str,
    old_primary: HotpathClient | None,
    timeout_s: float,
    settle_s: float = 2.0,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Wait until the old primary's sequence has stopped moving and the archive holds it.

    The halt reaches the old primary's region through the table's replication and requests already
    past their checks still land, so its sequence may move a little after the halt: it must stay
    put for ``settle_s`` (and the archive hold it) before the restore reads the archive. A node that
    stops answering meanwhile has stopped moving. Returns what was seen and how long it took.
    """
    began = clock()
    if old_primary is None:
        return {"skipped": "no old primary node configured"}
    try:
        node_seq = old_primary.snapshot().seq
    except HotpathError as exc:
        return {"skipped": f"the old primary does not answer: {exc}"}
    steady_since, answering = began, True
    while True:
        archived = archived_seq(s3, bucket, prefix)
        now = clock()
        seen = {
            "old_primary_seq": node_seq,
            "archived_seq": archived,
            "waited_seconds": round(now - began, 3),
        }
        if archived >= node_seq and (not answering or now - steady_since >= settle_s):
            return seen
        if now - began >= timeout_s:
            return seen | {"behind": max(node_seq - archived, 0), "settled": now - steady_since >= settle_s}
        sleep(poll_s)
        if answering:
            try:
                latest = old_primary.snapshot().seq
            except HotpathError:
                answering = False
                continue
            if latest != node_seq:
                node_seq, steady_since = latest, clock()
