"""Lambda entry points of the runbooks' logic steps (compliance report, DR failover and failback).

Each handler parses its step's input, calls one function of the ``runbook_tasks`` package and
returns JSON. Errors keep their class names, which the state machines catch by name
(``ArchiveChecksumError``, ``ArchiveRestoreError``, ``IntegrityCheckFailedError`` ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from runbook_tasks import clock, compliance, integrity, restore
from runbook_tasks.config import primary_database_environment, settings

from meridian import aws_clients as aws
from meridian import db
from meridian.aws_clients import TRACED_MODULES
from meridian.client import HotpathClient
from meridian.routing import RouteTable, RoutingError, provider_from_environment
from meridian.session_auth import credential_from_environment

logger = Logger(service="runbooks")
tracer = Tracer(service="runbooks", patch_modules=TRACED_MODULES)


@contextlib.contextmanager
def _ledger() -> Iterator[psycopg.Connection[Any]]:
    conn = db.connect()
    try:
        yield conn
    finally:
        conn.close()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def export_compliance_report_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"report_date"?: "YYYY-MM-DD", "time"?: schedule time, "run_id": ...} -> the manifest written."""
    s = settings()
    day = compliance.report_date(event.get("report_date"), event.get("time"))
    with _ledger() as conn:
        written: dict[str, Any] = compliance.export_day(
            conn,
            aws.client("s3"),
            s.compliance_archive_bucket,
            s.compliance_archive_prefix,
            day,
            str(event["run_id"]),
            s.compliance_kms_key_arn,
        )
    logger.info("compliance export written", extra=written)
    return written


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def verify_compliance_report_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"manifest_key": ..., "bucket"?: ...} -> {"verified": bool, "problems": [...], ...}"""
    bucket = event.get("bucket") or settings().compliance_archive_bucket
    with _ledger() as conn:
        result = compliance.verify_export(aws.client("s3"), bucket, str(event["manifest_key"]), conn)
    return {
        "verified": result.verified,
        "rows": result.rows,
        "files": result.files,
        "problems": result.problems,
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def restore_engine_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"run_id": ..., "to_seq"?: n} -> each node's verified restore point and the book checksums."""
    s = settings()
    to_seq = event.get("to_seq")
    restored: dict[str, Any] = restore.restore_nodes(
        aws.client("s3"),
        s.engine_archive_bucket,
        s.node_prefixes,
        str(event["run_id"]),
        None if to_seq is None else int(to_seq),
    )
    logger.info("engine restored", extra={"seq": restored["seq"], "nodes": len(restored["nodes"])})
    return restored


def _active_routes() -> RouteTable | None:
    """This region's routing table (MERIDIAN_ROUTES or its SSM parameter), if configured."""
    try:
        return provider_from_environment().table()
    except RoutingError:
        return None


def _nodes(table: RouteTable | None, symbols: list[str]) -> dict[str, HotpathClient]:
    if table is None:
        return {}
    clients: dict[str, HotpathClient] = {}
    for symbol in symbols:
        with contextlib.suppress(RoutingError):
            host, port = table.address_for(symbol)
            # The admin session key (SNAPSHOT_REQUEST): MERIDIAN_HOTPATH_KEY_SECRET_ARN on AWS.
            credential = credential_from_environment()
            clients[symbol] = HotpathClient(
                host, port, timeout=2.0, connect_timeout=1.0, credential=credential
            )
    return clients


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def validate_integrity_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"restore": <restore output>, "accept_data_loss"?: bool} -> the checks; raises when one fails."""
    restored = event["restore"]
    primary_env = primary_database_environment()

    def primary() -> tuple[int, int]:
        assert primary_env is not None
        with db.connect(db.settings_from_env(primary_env)) as conn:
            counted: tuple[int, int] = integrity.count_trades(conn)
            return counted

    symbols = list(restored["book_checksums"])
    old_routes = settings().primary_meridian_routes
    with _ledger() as conn:
        report = integrity.validate(
            restored,
            lambda: integrity.count_trades(conn),
            primary if primary_env else None,
            _nodes(RouteTable.from_json(old_routes) if old_routes else None, symbols),
            _nodes(_active_routes(), symbols),
            bool(event.get("accept_data_loss", False)),
        )
    outcome: dict[str, Any] = report.as_dict()
    if not report.ok:
        failed = "; ".join(f"{c['name']}: {c['detail']}" for c in outcome["checks"] if not c["ok"])
        raise integrity.IntegrityCheckFailedError(failed)
    return outcome


@logger.inject_lambda_context
def measure_recovery_time_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"halted_at": ..., "resumed_at": ...} -> seconds halted, against the RTO target."""
    measured: dict[str, Any] = clock.recovery_time(
        str(event["halted_at"]), str(event["resumed_at"]), settings().rto_target_seconds
    )
    return measured
