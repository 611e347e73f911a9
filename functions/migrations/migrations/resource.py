"""The custom resource's logic: Create/Update migrate, Delete keeps the data.

``SchemaVersion`` in the resource's properties is the highest migration version the template was
written for; changing it (with a new migration) is what makes CloudFormation send an Update and
re-run the migrations on deploy. A template expecting a newer schema than the code carries fails
the deploy instead of pretending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from meridian.ledger import latest_version, migrate

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
    expected = int(event.get("ResourceProperties", {}).get("SchemaVersion", 0))
    carried = latest_version()
    if expected > carried:
        raise ValueError(f"the template expects schema version {expected}; this code carries {carried}")
    with connect() as conn:
        report = migrate(conn)
    return {"SchemaVersion": str(report.schema_version), "Applied": ",".join(report.applied) or "none"}
