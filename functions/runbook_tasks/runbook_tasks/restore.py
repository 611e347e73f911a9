"""The failover's engine step: rebuild each matching node's state from the replicated archive.

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
from typing import Any

from meridian_hotpath.archive import RestoreResult, restore_to_temporary
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
