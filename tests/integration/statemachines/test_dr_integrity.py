"""Integrity after a failover, checked inside the runbook (moto server, two PostgreSQL ledgers).

The world's archive holds the primary's journal up to seq 12. What the primary acknowledged after
its last shipped record is in the replicated tables and the ledger replica, not in the restored
engine: the runbook lists it for reconciliation with the client order ids, and stops with trading
halted unless the failover accepts the loss (the automatic one may be configured to).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian.events import TradeExecuted
from meridian.ledger import record_trade
from meridian_local.drills.dr_world import DRILL, World, build_world, halted

pytestmark = pytest.mark.integration


def _acknowledged_after_the_last_ship(world: World) -> None:
    """An order the primary acked at seq 14 (replicated) and a trade of seq 13 (in both ledgers)."""
    world.stack.client("dynamodb").put_item(
        TableName=world.stack.refs["OrdersTable"],
        Item={
            "order_id": {"S": "ord_lost"},
            "client_order_id": {"S": "late-1"},
            "account": {"S": "ACC-LATE"},
            "symbol": {"S": "AAPL"},
            "status": {"S": "NEW"},
            "last_seq": {"N": "14"},
            "created_key": {"S": "2026-12-01T10:00:00+00:00#ord_lost"},
        },
    )
    last = world.trades[-1]
    late = TradeExecuted.model_validate(
        {
            **last.model_dump(),
            "event_id": "n-late",
            "execution_id": "n-late",
            "node_seq": 13,
            "buy_client_order_id": "late-2",
            "sell_client_order_id": "late-3",
        }
    )
    for ledger in (world.primary_database_url, world.database_url):  # the primary and its replica
        with psycopg.connect(ledger, autocommit=True) as conn:
            record_trade(conn, late)
    # The replicated market data already shows what the restored engine will not know.
    world.stack.client("dynamodb").put_item(
        TableName=world.stack.refs["MarketDataTable"],
        Item={"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": "BOOK"}, "node_seq": {"N": "14"}},
    )


@pytest.fixture
def world(moto: Any, postgres_url: str, tmp_path: Path, start_node: Any) -> World:
    built = build_world(moto, postgres_url, tmp_path, start_node, active_node=True)
    _acknowledged_after_the_last_ship(built)
    return built


def test_what_the_engine_lacks_stops_the_failover_with_the_client_order_ids(world: World) -> None:
    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "IntegrityCheckFailed")
    cause = result["cause"]
    assert "late-1 (ACC-LATE, NEW)" in cause  # the order, by its client order id
    assert "n-late (late-2/late-3)" in cause  # the trade, by both sides' client order ids
    assert "market_data:AAPL: book at seq 14" in cause
    assert "beyond the restored engine" in cause
    assert halted(world)


def test_accepting_the_loss_resumes_and_reports_what_to_reconcile(world: World) -> None:
    result = world.stack.run("DrFailoverStateMachine", {**DRILL, "accept_data_loss": True}, timeout=90)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    report = json.loads(result["output"])
    orders = report["reconcile"]["orders"]
    assert [(o["client_order_id"], o["last_seq"], o["restored_seq"]) for o in orders] == [("late-1", 14, 12)]
    (trade,) = report["reconcile"]["trades"]
    assert (trade["execution_id"], trade["node_seq"]) == ("n-late", 13)
    checks = {c["name"]: c for c in report["integrity"]["checks"]}
    assert checks["acknowledged_orders"]["ok"]
    assert "(accepted)" in checks["acknowledged_orders"]["detail"]
    assert "(accepted)" in checks["market_data:AAPL"]["detail"]
    assert not halted(world)
