"""The daily compliance export: the day's trades from the ledger to the compliance archive, verified.

Layout: ``trades/date=YYYY-MM-DD/run=<run id>/part-NNNNN.jsonl.gz`` (gzip JSON lines, one trade a
line, in ledger order) and ``manifest.json`` beside them. The manifest lists every part with its
row count, byte size and SHA-256; every object (the manifest too) also carries its SHA-256 in its
metadata, and S3 checks an additional SHA-256 checksum on upload. :func:`verify_export` re-reads
everything, recomputes every digest and count, and recounts the day in the ledger.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

ROWS_PER_PART = 50_000
SHA256_KEY = "sha256"
MANIFEST = "manifest.json"
COLUMNS = (
    "ledger_seq",
    "execution_id",
    "event_id",
    "symbol",
    "price",
    "quantity",
    "aggressor_side",
    "buy_order_id",
    "sell_order_id",
    "buy_account",
    "sell_account",
    "buy_client_order_id",
    "sell_client_order_id",
    "node_seq",
    "occurred_at",
    "recorded_at",
)
_SELECT = (
    f"SELECT {', '.join(COLUMNS)} FROM trades "  # noqa: S608 - a constant column list, no input
    "WHERE occurred_at >= %s AND occurred_at < %s ORDER BY ledger_seq"
)
_COUNT = "SELECT count(*) FROM trades WHERE occurred_at >= %s AND occurred_at < %s"


class ExportError(RuntimeError):
    """The export could not be written."""


@dataclass(slots=True)
class Verification:
    verified: bool = True
    rows: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.verified = False
        self.problems.append(problem)


def report_date(requested: str | None, schedule_time: str | None) -> date:
    """The day to export: as requested, else the UTC day before the schedule fired (or before now)."""
    if requested:
        return date.fromisoformat(requested)
    fired = (
        datetime.fromisoformat(schedule_time.replace("Z", "+00:00")) if schedule_time else datetime.now(UTC)
    )
    return (fired.astimezone(UTC) - timedelta(days=1)).date()


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def run_prefix(prefix: str, day: date, run_id: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), "trades", f"date={day.isoformat()}", f"run={run_id}") if p)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def trade_lines(conn: psycopg.Connection[Any], day: date) -> Iterator[bytes]:
    """The day's trades as JSON lines, streamed through a server-side cursor."""
    with conn.transaction(), conn.cursor(name="compliance_export") as cursor:
        cursor.itersize = 5_000
        cursor.execute(_SELECT, day_window(day))
        for row in cursor:
            record = {name: _json_value(value) for name, value in zip(COLUMNS, row, strict=True)}
            yield json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _parts(lines: Iterable[bytes], rows_per_part: int) -> Iterator[tuple[bytes, int]]:
    buffer: list[bytes] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) == rows_per_part:
            yield gzip.compress(b"".join(buffer), mtime=0), len(buffer)
            buffer = []
    if buffer:
        yield gzip.compress(b"".join(buffer), mtime=0), len(buffer)


def _put(s3: Any, bucket: str, key: str, body: bytes, content_type: str, kms_key: str) -> str:
    digest = hashlib.sha256(body).hexdigest()
    extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        Metadata={SHA256_KEY: digest},
        ChecksumAlgorithm="SHA256",
        **extra,
    )
    return digest


def export_day(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    prefix: str,
    day: date,
    run_id: str,
    kms_key: str = "",
    rows_per_part: int = ROWS_PER_PART,
) -> dict[str, Any]:
    """Write the day's parts, then the manifest (last: a manifest only ever names written parts)."""
    base = run_prefix(prefix, day, run_id)
    files: list[dict[str, Any]] = []
    for index, (body, rows) in enumerate(_parts(trade_lines(conn, day), rows_per_part)):
        key = f"{base}/part-{index:05d}.jsonl.gz"
        digest = _put(s3, bucket, key, body, "application/gzip", kms_key)
        files.append({"key": key, "rows": rows, "bytes": len(body), "sha256": digest})
    start, end = day_window(day)
    manifest = {
        "report": "trades",
        "format": "jsonl+gzip",
        "report_date": day.isoformat(),
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "run_id": run_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "columns": list(COLUMNS),
        "rows": sum(int(f["rows"]) for f in files),
        "files": files,
    }
    manifest_key = f"{base}/{MANIFEST}"
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    digest = _put(s3, bucket, manifest_key, body, "application/json", kms_key)
    return {
        "bucket": bucket,
        "manifest_key": manifest_key,
        "manifest_sha256": digest,
        "report_date": day.isoformat(),
        "rows": manifest["rows"],
        "files": len(files),
    }


def _read(s3: Any, bucket: str, key: str) -> tuple[bytes, str | None]:
    response = s3.get_object(Bucket=bucket, Key=key)
    return response["Body"].read(), response.get("Metadata", {}).get(SHA256_KEY)


def verify_export(
    s3: Any, bucket: str, manifest_key: str, conn: psycopg.Connection[Any] | None = None
) -> Verification:
    """Re-read the manifest and every part; recount the day in the ledger when ``conn`` is given."""
    result = Verification()
    body, recorded = _read(s3, bucket, manifest_key)
    if hashlib.sha256(body).hexdigest() != recorded:
        result.fail(f"{manifest_key}: SHA-256 does not match its recorded digest")
        return result
    manifest = json.loads(body)
    for entry in manifest["files"]:
        data, stored_digest = _read(s3, bucket, entry["key"])
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"] or digest != stored_digest:
            result.fail(f"{entry['key']}: SHA-256 {digest} does not match the manifest's {entry['sha256']}")
            continue
        try:
            lines = gzip.decompress(data).splitlines()
            seqs = [int(json.loads(line)["ledger_seq"]) for line in lines]
        except (OSError, ValueError, KeyError) as exc:
            result.fail(f"{entry['key']}: unreadable: {exc}")
            continue
        if len(lines) != entry["rows"]:
            result.fail(f"{entry['key']}: {len(lines)} rows, the manifest says {entry['rows']}")
        if seqs != sorted(seqs):
            result.fail(f"{entry['key']}: rows are not in ledger order")
        result.rows += len(lines)
        result.files += 1
    if result.rows != manifest["rows"] and result.verified:
        result.fail(f"{result.rows} rows read, the manifest says {manifest['rows']}")
    if conn is not None:
        day = date.fromisoformat(manifest["report_date"])
        row = conn.execute(_COUNT, day_window(day)).fetchone()
        in_ledger = int(row[0]) if row else 0
        if in_ledger != manifest["rows"]:
            result.fail(f"the ledger holds {in_ledger} trades for {day}, the export {manifest['rows']}")
    return result
