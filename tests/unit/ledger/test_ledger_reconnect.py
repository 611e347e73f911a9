"""The ledger's reconnect path: PostgreSQL drops the function's connection, the batch is retried.

The connection is really dropped: the server ends its backend (``pg_terminate_backend``), between
two batches, inside a trade's transaction, and right after a trade's commit (the commit happened,
its answer is lost). Each batch is delivered as SQS does: the records the handler reports as failed
come back in a later receive, until none is left. At the end every trade is in the ledger exactly
once, positions agree with the trade history, and only the records that met the drop were retried.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian import db
from meridian.events import TradeExecuted
from meridian.ledger import positions, rebuild_from_history
from meridian_local.delivery.lambda_events import LocalLambdaContext, sqs_event
from meridian_local.delivery.pollers import Handler, load_handler
from tests.pipeline_factories import envelope, trade

REPO = Path(__file__).resolve().parents[3]
MAX_RECEIVES = 5


@pytest.fixture
def handler(ledger_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    monkeypatch.setenv("DATABASE_URL", ledger_database_url)
    db.reset_shared_connection()
    yield load_handler(REPO / "functions" / "ledger", "app.lambda_handler")
    db.reset_shared_connection()


def terminate_backend(url: str, pid: int) -> None:
    """What a failover or an idle-connection reaper does: the server ends the session."""
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert row == (True,)


def deliver(handler: Handler, bodies: list[str]) -> list[int]:
    """Deliver one SQS batch and redeliver what failed, as the queue does; receives per round."""
    pending, rounds = bodies, list[int]()
    while pending and len(rounds) < MAX_RECEIVES:
        event = sqs_event(pending)
        response: Any = handler(event, LocalLambdaContext())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        rounds.append(len(pending))
        pending = [r["body"] for r in event["Records"] if r["messageId"] in failed]
    assert not pending, f"still failing after {MAX_RECEIVES} receives"
    return rounds


def batch(first: int, size: int = 10) -> tuple[list[TradeExecuted], list[str]]:
    trades = [
        trade(f"reconnect-{n}", buyer=f"A{n % 3}", seller=f"B{n % 4}", price=f"{100 + n % 7}.25")
        for n in range(first, first + size)
    ]
    return trades, [json.dumps(envelope(t)) for t in trades]


def ledger_state(url: str) -> tuple[Counter[str], dict[Any, Any], dict[Any, Any]]:
    with psycopg.connect(url) as conn:
        ids = Counter(row[0] for row in conn.execute("SELECT execution_id FROM trades"))
        rebuilt = {
            k: (p.quantity, p.realized_pnl, p.trade_count) for k, p in rebuild_from_history(conn).items()
        }
        stored = {
            (p.account, p.symbol): (p.quantity, p.realized_pnl, p.trade_count) for p in positions(conn, None)
        }
    return ids, rebuilt, stored


def with_fault(
    monkeypatch: pytest.MonkeyPatch, fault: Callable[[Callable[..., bool], Any, TradeExecuted], bool]
) -> Counter[str]:
    """Route the handler's ``record_trade`` through ``fault``; count the attempts per execution id."""
    handler_module = sys.modules["ledger.handler"]
    real, attempts = handler_module.record_trade, Counter[str]()

    def record_trade(conn: Any, event: TradeExecuted) -> bool:
        attempts[event.execution_id] += 1
        return fault(real, conn, event)

    monkeypatch.setattr(handler_module, "record_trade", record_trade)
    return attempts


def test_a_connection_dropped_between_batches_costs_one_retry(
    handler: Handler, ledger_database_url: str
) -> None:
    first, first_bodies = batch(0)
    assert deliver(handler, first_bodies) == [10]
    terminate_backend(ledger_database_url, db.shared_connection().info.backend_pid)

    second, second_bodies = batch(10)
    # The first record meets the dead connection and fails; the function replaces the connection,
    # the rest of the batch goes through, and the failed record succeeds on its redelivery.
    assert deliver(handler, second_bodies) == [10, 1]

    ids, rebuilt, stored = ledger_state(ledger_database_url)
    assert ids == Counter({t.execution_id: 1 for t in first + second})
    assert rebuilt == stored


def test_a_connection_dropped_inside_a_transaction_rolls_back_and_the_retry_applies_it_once(
    handler: Handler, ledger_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades, bodies = batch(100)
    victim = trades[4].execution_id  # in the middle of the batch

    class DyingConnection:
        """The handler's connection; the server ends it after the trade row is inserted."""

        def __init__(self, conn: psycopg.Connection[Any]) -> None:
            self._conn = conn

        def execute(self, query: Any, params: Any = None) -> Any:
            cursor = self._conn.execute(query, params)
            if "INSERT INTO trades" in str(query):
                terminate_backend(ledger_database_url, self._conn.info.backend_pid)
            return cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    def drop_mid_transaction(real: Callable[..., bool], conn: Any, event: TradeExecuted) -> bool:
        if event.execution_id == victim and attempts[victim] == 1:
            return real(DyingConnection(conn), event)
        return real(conn, event)

    attempts = with_fault(monkeypatch, drop_mid_transaction)
    assert deliver(handler, bodies) == [10, 1]

    ids, rebuilt, stored = ledger_state(ledger_database_url)
    assert ids == Counter({t.execution_id: 1 for t in trades})
    assert rebuilt == stored  # the half-done transaction left no position change behind
    assert attempts[victim] == 2
    assert {attempts[t.execution_id] for t in trades if t.execution_id != victim} == {1}


def test_a_commit_whose_answer_is_lost_is_retried_as_a_duplicate_not_written_twice(
    handler: Handler, ledger_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades, bodies = batch(200)
    victim = trades[7].execution_id
    outcomes: list[bool] = []

    def drop_after_commit(real: Callable[..., bool], conn: Any, event: TradeExecuted) -> bool:
        recorded = real(conn, event)
        if event.execution_id == victim:
            outcomes.append(recorded)
            if len(outcomes) == 1:  # committed; the connection dies before the function hears back
                terminate_backend(ledger_database_url, conn.info.backend_pid)
                conn.execute("SELECT 1")  # raises: the answer never arrives
        return recorded

    attempts = with_fault(monkeypatch, drop_after_commit)
    assert deliver(handler, bodies) == [10, 1]
    assert outcomes == [True, False]  # the redelivery found the trade already recorded

    ids, rebuilt, stored = ledger_state(ledger_database_url)
    assert ids == Counter({t.execution_id: 1 for t in trades})
    assert rebuilt == stored  # positions moved once
    assert attempts[victim] == 2
