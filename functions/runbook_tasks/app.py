"""Lambda entry points of the runbooks' logic steps (compliance report, DR failover and failback,
symbol move).

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
from runbook_tasks import compliance, integrity, market_check, reconcile, restore, symbol_moves, timeline
from runbook_tasks.config import primary_database_environment, settings

from meridian import aws_clients as aws
from meridian import db, powertools
from meridian.client import HotpathClient
from meridian.routing import RouteTable, RoutingError, provider_from_environment
from meridian.session_auth import credential_from_environment

_T = TypeVar("_T")
_Req = TypeVar("_Req", bound=symbol_moves.MoveRequest)
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


# ---- symbol move (statemachines/symbol-move.asl.json) -------------------------------------------------


def _move_routes() -> RouteTable:
    """The route table as it is now: the SSM parameter read afresh (no cache: the verify step must
    see the switch), else MERIDIAN_ROUTES (local)."""
    parameter = settings().meridian_routes_parameter
    try:
        if parameter:
            value = aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
            return RouteTable.from_json(value)
        return provider_from_environment().table()
    except RoutingError as exc:
        raise symbol_moves.MoveConfigError(str(exc)) from None


def _move(event: dict[str, Any], model: type[_Req]) -> tuple[_Req, symbol_moves.Shards]:
    """The step's validated input (checked against the route table) and clients for both shards."""
    request = symbol_moves.parse_request(event, model)
    symbol_moves.check_routes(request, _move_routes(), settings().meridian_shard_addresses)
    shards = symbol_moves.Shards.connect(request, symbol_moves.session_keys_from_environment())
    logger.append_keys(symbol=request.symbol, source=request.source, destination=request.destination)
    return request, shards


def halt_source_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"symbol", "source", "destination"} -> {"halted_seq"}; UnknownSymbolError if a shard lacks it."""
    request, shards = _move(event, symbol_moves.MoveRequest)
    out: dict[str, Any] = symbol_moves.halt_source(request, shards)
    return out


def copy_book_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, shards = _move(event, symbol_moves.MoveRequest)
    result = symbol_moves.copy_book(request, shards)
    logger.info("book copied", extra={"orders": result.orders, "copied": result.copied})
    out: dict[str, Any] = result.model_dump()
    return out


def remove_from_source_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, shards = _move(event, symbol_moves.MoveRequest)
    out: dict[str, Any] = symbol_moves.remove_from_source(request, shards).model_dump()
    return out


def point_records_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, shards = _move(event, symbol_moves.MoveRequest)
    report = symbol_moves.point_records(request, shards, aws.client("dynamodb"), settings().orders_table)
    out: dict[str, Any] = report.model_dump()
    return out


def switch_route_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, _ = _move(event, symbol_moves.MoveRequest)
    parameter = settings().meridian_routes_parameter
    out: dict[str, Any] = symbol_moves.switch_route(request, aws.client("ssm"), parameter)
    return out


def verify_move_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The move input plus {"copy", "remove", "point"} (the steps' outputs) -> {"verified": true, ...}."""
    request, shards = _move(event, symbol_moves.VerifyRequest)
    out: dict[str, Any] = symbol_moves.verify(request, shards, _move_routes())
    return out


def resume_destination_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, shards = _move(event, symbol_moves.MoveRequest)
    out: dict[str, Any] = symbol_moves.resume_destination(request, shards)
    return out


def keep_halted_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """After a failed step: halt the symbol on both shards (never resume) -> what each answered."""
    request = symbol_moves.parse_request(event, symbol_moves.MoveRequest)
    shards = symbol_moves.Shards.connect(request, symbol_moves.session_keys_from_environment())
    outcome: dict[str, Any] = symbol_moves.keep_halted(request, shards)
    logger.warning("symbol move stopped; symbol left halted", extra=outcome)
    return outcome


SYMBOL_MOVE_STEPS: dict[str, Callable[[dict[str, Any], LambdaContext], dict[str, Any]]] = {
    "halt_source": halt_source_handler,
    "copy": copy_book_handler,
    "remove": remove_from_source_handler,
    "point_records": point_records_handler,
    "switch_route": switch_route_handler,
    "verify": verify_move_handler,
    "resume_destination": resume_destination_handler,
    "keep_halted": keep_halted_handler,
}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def symbol_move_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"step": one of SYMBOL_MOVE_STEPS, "move": {"symbol", "source", "destination"}, ...the verify
    step's "copy", "remove" and "point"} -> that step's output.
    One function serves every step of the runbook (one role, one set of permissions)."""
    step, move = event.get("step"), event.get("move")
    handler = SYMBOL_MOVE_STEPS.get(step) if isinstance(step, str) else None
    if handler is None:
        raise symbol_moves.MoveInputError(f"step must be one of {sorted(SYMBOL_MOVE_STEPS)}, got {step!r}")
    if not isinstance(move, dict):
        raise symbol_moves.MoveInputError('the input needs "move": {"symbol", "source", "destination"}')
    body = {**move, **{k: v for k, v in event.items() if k not in ("step", "move")}}
    logger.append_keys(step=step)
    return handler(body, context)
