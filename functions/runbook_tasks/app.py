"""Lambda entry points of the runbooks' logic steps (compliance report, DR failover and failback).

Each handler parses its step's input, calls one function of the ``runbook_tasks`` package and
returns JSON. Errors keep their class names, which the state machines catch by name
(``ArchiveChecksumError``, ``ArchiveRestoreError``, ``IntegrityCheckFailedError`` ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from runbook_tasks import compliance, integrity, market_check, reconcile, restore, timeline
from runbook_tasks.config import primary_database_environment, settings

from meridian import aws_clients as aws
from meridian import db, powertools
from meridian.client import HotpathClient
from meridian.routing import RouteTable, RoutingError, provider_from_environment
from meridian.session_auth import credential_from_environment

_T = TypeVar("_T")
logger = Logger(service="runbooks")
tracer = powertools.tracer("runbooks")


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
    s3 = aws.client("s3")
    caught_up = {}
    if len(s.node_prefixes) == 1 and to_seq is None:  # one node: the old primary's routes name it
        old = (
            _nodes(RouteTable.from_json(s.primary_meridian_routes), ["*"])
            if s.primary_meridian_routes
            else {}
        )
        caught_up = restore.await_archive(
            s3,
            s.engine_archive_bucket,
            s.node_prefixes[0],
            old.get("*"),
            s.archive_catch_up_seconds,
            s.halt_settle_seconds,
        )
        logger.info("archive against the old primary", extra=caught_up)
    restored: dict[str, Any] = restore.restore_nodes(
        s3,
        s.engine_archive_bucket,
        s.node_prefixes,
        str(event["run_id"]),
        None if to_seq is None else int(to_seq),
    )
    logger.info("engine restored", extra={"seq": restored["seq"], "nodes": len(restored["nodes"])})
    restored["archive"] = caught_up
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


def _on_primary_ledger(query: Callable[[psycopg.Connection[Any]], _T]) -> _T:
    """``query`` run on the old primary's ledger (PRIMARY_DB_* / PRIMARY_DATABASE_URL)."""
    primary_env = primary_database_environment()
    if primary_env is None:
        raise RuntimeError("no old primary ledger is configured")
    with db.connect(db.settings_from_env(primary_env)) as conn:
        return query(conn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def validate_integrity_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"restore": <restore output>, "accept_data_loss"?: bool} -> the checks and what to reconcile;
    raises when a check fails."""
    restored = event["restore"]
    s = settings()
    symbols = list(restored["book_checksums"])
    old_routes = s.primary_meridian_routes
    has_primary = primary_database_environment() is not None
    with _ledger() as conn:
        dynamodb = aws.client("dynamodb")
        sources = integrity.Sources(
            trades_beyond=lambda seq: reconcile.trades_beyond(conn, seq),
            checksum_here=lambda seq: reconcile.ledger_checksum(conn, seq),
            checksum_primary=(
                (lambda seq: _on_primary_ledger(lambda c: reconcile.ledger_checksum(c, seq)))
                if has_primary
                else None
            ),
            orders=(
                reconcile.recent_orders(
                    dynamodb, s.orders_table, datetime.now(UTC), s.reconciliation_window_seconds
                )
                if s.orders_table
                else None
            ),
            market_data=(
                (lambda symbol: market_check.published(dynamodb, s.market_data_table, symbol))
                if s.market_data_table
                else None
            ),
        )
        report = integrity.validate(
            restored,
            lambda: integrity.count_trades(conn),
            (lambda: _on_primary_ledger(integrity.count_trades)) if has_primary else None,
            _nodes(RouteTable.from_json(old_routes) if old_routes else None, symbols),
            _nodes(_active_routes(), symbols),
            bool(event.get("accept_data_loss", False)),
            sources,
        )
    outcome: dict[str, Any] = report.as_dict()
    if not report.ok:
        failed = "; ".join(f"{c['name']}: {c['detail']}" for c in outcome["checks"] if not c["ok"])
        raise integrity.IntegrityCheckFailedError(failed + integrity.reconcile_summary(report))
    return outcome


def _history(execution_arn: str) -> list[dict[str, Any]]:
    pages = (
        aws.client("stepfunctions")
        .get_paginator("get_execution_history")
        .paginate(executionArn=execution_arn)
    )
    return [event for page in pages for event in page["events"]]


@logger.inject_lambda_context
def measure_recovery_time_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The switchover's clock, timeline and first order -> the RTO, each step's time and the
    CloudWatch datums (statemachines/dr-switchover.asl.json, MeasureRecoveryTime)."""
    s = settings()
    measured: dict[str, Any] = timeline.measure(
        event, _history(str(event["execution_arn"])), s.meridian_environment, s.rto_target_seconds
    )
    logger.info("recovery measured", extra={"seconds": measured["seconds"], "steps": measured["steps"]})
    return measured
