"""Surveillance state in PostgreSQL (migration V002): the activity log and the findings.

Why PostgreSQL and not a DynamoDB table: the windowed rules need "how many orders, cancels and
trades did this account make in the last N seconds", which is one indexed range count over an
idempotent activity log; the activity and the findings it triggers commit in one transaction;
and compliance exports and investigations already query the ledger's database with SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from .rules import ActivityCounts, Finding

ActivityKind = Literal["order", "replace", "cancel", "trade"]


@dataclass(frozen=True, slots=True)
class Activity:
    event_id: str
    account: str
    kind: ActivityKind
    symbol: str
    occurred_at: datetime


def record_activity(conn: psycopg.Connection[Any], activities: Sequence[Activity]) -> None:
    """Log activities once each (a redelivered event adds nothing)."""
    if not activities:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO surveillance_activity (event_id, account, kind, symbol, occurred_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(a.event_id, a.account, a.kind, a.symbol, a.occurred_at) for a in activities],
        )


def window_counts(
    conn: psycopg.Connection[Any], account: str, until: datetime, window_s: int
) -> ActivityCounts:
    """The account's activity in ``(until - window_s, until]``."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE kind = 'order'), count(*) FILTER (WHERE kind = 'replace'),"
        " count(*) FILTER (WHERE kind = 'cancel'), count(*) FILTER (WHERE kind = 'trade')"
        " FROM surveillance_activity WHERE account = %s AND occurred_at > %s AND occurred_at <= %s",
        (account, until - timedelta(seconds=window_s), until),
    ).fetchone()
    assert row is not None  # an aggregate always returns a row
    return ActivityCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def save_findings(conn: psycopg.Connection[Any], findings: Sequence[Finding]) -> int:
    """Store findings not stored before; returns how many were new."""
    new = 0
    for f in findings:
        cur = conn.execute(
            "INSERT INTO surveillance_findings"
            " (finding_id, rule, severity, account, symbol, event_id, occurred_at, summary, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (finding_id) DO NOTHING",
            (
                f.finding_id,
                f.rule,
                f.severity,
                f.account,
                f.symbol,
                f.event_id,
                f.occurred_at,
                f.summary,
                json.dumps(f.details),
            ),
        )
        new += cur.rowcount
    return new


def unalerted(conn: psycopg.Connection[Any], event_id: str) -> list[Finding]:
    """Findings raised by ``event_id`` whose alert has not gone out yet."""
    rows = conn.execute(
        "SELECT finding_id, rule, severity, account, symbol, event_id, occurred_at, summary, details"
        " FROM surveillance_findings WHERE event_id = %s AND alerted_at IS NULL ORDER BY finding_id",
        (event_id,),
    ).fetchall()
    return [Finding(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], dict(r[8])) for r in rows]


def mark_alerted(conn: psycopg.Connection[Any], finding_ids: Sequence[str]) -> None:
    if finding_ids:
        conn.execute(
            "UPDATE surveillance_findings SET alerted_at = now() WHERE finding_id = ANY(%s)",
            (list(finding_ids),),
        )


def findings(conn: psycopg.Connection[Any], account: str | None = None) -> list[Finding]:
    """Every finding (of ``account`` when given), oldest first: for investigations and tests."""
    rows = conn.execute(
        "SELECT finding_id, rule, severity, account, symbol, event_id, occurred_at, summary, details"
        " FROM surveillance_findings WHERE %s::text IS NULL OR account = %s ORDER BY occurred_at, finding_id",
        (account, account),
    ).fetchall()
    return [Finding(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], dict(r[8])) for r in rows]
