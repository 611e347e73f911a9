"""Fault injection through a real SQS queue and DLQ (moto server) into the real ledger handler.

The poller does what the Lambda event source mapping does. Chosen records fail transiently
(and then succeed), chosen records fail every time, and some messages are poison; at the end
every message is either applied exactly once in PostgreSQL or sitting in the DLQ.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian import db
from meridian.events import TradeExecuted
from meridian.ledger import positions, rebuild_from_history
from meridian_local.delivery.lambda_events import eventbridge_event
from meridian_local.delivery.pollers import SqsPoller, drain, load_handler
from tests.integration.pipeline.sqs_harness import drain_queue, queue_with_dlq
from tests.pipeline_factories import trade

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
MAX_RECEIVES = 5
TRADES = 120
TRANSIENT = {f"exe-{i}" for i in range(0, TRADES, 10)}  # fail twice, then succeed
PERMANENT = {f"exe-{i}" for i in range(5, TRADES, 20)}  # fail on every receive
POISON = ["{broken json", json.dumps({"detail-type": "trade.executed.v7", "detail": {}})]


def _faulty(real: Callable[[Any, TradeExecuted], bool], attempts: Counter[str]) -> Callable[..., bool]:
    def record_trade(conn: Any, trade_event: TradeExecuted) -> bool:
        attempts[trade_event.execution_id] += 1
        if trade_event.execution_id in PERMANENT:
            raise RuntimeError(f"injected permanent fault for {trade_event.execution_id}")
        if trade_event.execution_id in TRANSIENT and attempts[trade_event.execution_id] <= 2:
            raise RuntimeError(f"injected transient fault for {trade_event.execution_id}")
        return real(conn, trade_event)

    return record_trade


def test_in_equals_applied_plus_dlq(
    aws: Callable[[str], Any], ledger_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    db.reset_shared_connection()
    handler = load_handler(REPO / "functions" / "ledger", "app.lambda_handler")
    handler_module = sys.modules["ledger.handler"]
    attempts: Counter[str] = Counter()
    monkeypatch.setattr(handler_module, "record_trade", _faulty(handler_module.record_trade, attempts))

    sqs = aws("sqs")
    queue_url, dlq_url = queue_with_dlq(sqs, "ledger-faults", MAX_RECEIVES)
    events = [
        trade(f"exe-{i}", buyer=f"A{i % 3}", seller=f"B{i % 4}", price=f"{100 + i % 7}.25")
        for i in range(TRADES)
    ]
    bodies = [json.dumps(eventbridge_event(e)) for e in events]
    bodies += bodies[:15]  # EventBridge delivers at least once: duplicates must not double anything
    bodies += POISON
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])],
        )

    poller = SqsPoller(sqs, queue_url, handler, batch_size=10, retry_visibility_s=0, function_name="ledger")
    drain([poller], max_rounds=500, idle_rounds=2)
    db.reset_shared_connection()

    dead = drain_queue(sqs, dlq_url)
    dead_ids = Counter(
        json.loads(m["Body"])["detail"]["execution_id"] for m in dead if m["Body"] not in POISON
    )
    with psycopg.connect(ledger_database_url) as conn:
        applied = {row[0] for row in conn.execute("SELECT execution_id FROM trades")}
        rebuilt = rebuild_from_history(conn)
        stored = {(p.account, p.symbol): (p.quantity, p.realized_pnl) for p in positions(conn, None)}

    assert len(bodies) == poller.stats.succeeded + len(dead)  # in = applied (incl. duplicates) + DLQ
    assert applied == {e.execution_id for e in events} - PERMANENT
    assert set(dead_ids) == PERMANENT  # each permanent failure (and its duplicate, if any) is dead
    assert sum(1 for m in dead if m["Body"] in POISON) == len(POISON)
    # Moved after MAX_RECEIVES receives (our receive from the DLQ counts one more).
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) > MAX_RECEIVES for m in dead)
    assert {k: (p.quantity, p.realized_pnl) for k, p in rebuilt.items()} == stored  # nothing doubled
    # Only the failing records were retried: everything else was attempted exactly once.
    healthy = {e.execution_id for e in events} - TRANSIENT - PERMANENT - {e.execution_id for e in events[:15]}
    assert {attempts[x] for x in healthy} == {1}
    assert {attempts[x] for x in TRANSIENT - {e.execution_id for e in events[:15]}} == {3}
    assert {attempts[x] for x in PERMANENT - {e.execution_id for e in events[:15]}} == {MAX_RECEIVES}
    assert drain_queue(sqs, queue_url) == []
