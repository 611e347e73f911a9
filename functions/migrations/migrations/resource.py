"""The custom resource's logic: Create/Update migrate (or verify), Delete keeps the data.

``SchemaVersion`` in the resource's properties is the highest migration version the template was
written for; changing it (with a new migration) is what makes CloudFormation send an Update and
re-run the migrations on deploy. A template expecting a newer schema than the code carries fails
the deploy instead of pretending.

``Mode`` says where the ledger is writable: ``migrate`` (a primary) applies the pending migrations;
``verify`` (a read replica, the dr region) writes nothing and checks that the primary's migrations
reached it, at least up to ``SchemaVersion``. A ``migrate`` request that lands on a read-only ledger
fails with the reason (a replica's stack names its primary) instead of the database's refusal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from meridian.ledger import is_read_only, latest_version, migrate, verify

from .cfn_response import Responder

PHYSICAL_ID = "meridian-ledger-schema"
WATCHDOG_MARGIN_S = 5.0
Connect = Callable[[], psycopg.Connection[Any]]


def handle(event: Mapping[str, Any], remaining_ms: int, connect: Connect, responder: Responder) -> None:
    """Run one custom resource request and make sure exactly one response is sent."""
    physical_id = str(event.get("PhysicalResourceId") or PHYSICAL_ID)
    watchdog = threading.Timer(
        max(0.1, remaining_ms / 1000 - WATCHDOG_MARGIN_S),
        lambda: responder.send(
            "FAILED", physical_id, "migrations did not finish before the function timed out"
        ),
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        data = _apply(event, connect)
    except Exception as exc:
        responder.send("FAILED", physical_id, f"{type(exc).__name__}: {exc}")
        raise
    else:
        responder.send("SUCCESS", physical_id, data=data)
    finally:
        watchdog.cancel()


def _apply(event: Mapping[str, Any], connect: Connect) -> dict[str, str]:
    request = event["RequestType"]
    if request == "Delete":
        return {"SchemaVersion": "unchanged"}  # a stack deletion never drops the ledger
    if request not in ("Create", "Update"):
        raise ValueError(f"unknown RequestType {request!r}")
    properties = event.get("ResourceProperties", {})
    expected = int(properties.get("SchemaVersion", 0))
    mode = str(properties.get("Mode", "migrate"))
    if mode not in ("migrate", "verify"):
        raise ValueError(f"unknown Mode {mode!r}: migrate (a writable ledger) or verify (a read replica)")
    carried = latest_version()
    if expected > carried:
        raise ValueError(f"the template expects schema version {expected}; this code carries {carried}")
    with connect() as conn:
        if mode == "verify":
            report = verify(conn)
            if report.schema_version < expected:
                raise ValueError(
                    f"the replica's ledger is at schema version {report.schema_version}, the template "
                    f"expects {expected}: deploy the primary region first, then this one"
                )
            return {"SchemaVersion": str(report.schema_version), "Applied": "none (read replica)"}
        if is_read_only(conn):
            raise ValueError(
                "the ledger is read-only (a read replica): its stack must name the primary "
                "(PrimaryDbInstanceArn), which makes this resource verify instead of migrate"
            )
        report = migrate(conn)
    return {"SchemaVersion": str(report.schema_version), "Applied": ",".join(report.applied) or "none"}
