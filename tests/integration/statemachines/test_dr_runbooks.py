"""The DR switchover runbooks (failover and failback) end to end on moto server.

The world (``meridian_local.drills.dr_world``): a live matching node whose journal is shipped to the
secondary region's bucket, two PostgreSQL ledgers (primary and replica) holding its trades, an RDS
replica in us-west-2 of an instance in us-east-1, the replica-lag alarm the template declares, and
Route 53 failover records. The secondary region's activated node is stood in for by a node started
from a restore of the same archive (SSM Run Command does not run anything under moto).

The recovery time is measured, reported and recorded, never bounded here: wall-clock time on a
shared test machine says nothing about the runbook.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meridian_hotpath.archive import archived_segments
from meridian_local.drills.dr_orders import register_principal, submit
from meridian_local.drills.dr_world import (
    DR_ENDPOINT,
    DRILL,
    FAILBACK,
    PREFIX,
    PRIMARY_ENDPOINT,
    build_world,
    halted,
    primary_record,
    replicating,
)
from tests.integration.statemachines.conftest import tap_bus

pytestmark = pytest.mark.integration


def _metrics(stack: Any) -> set[str]:
    metrics = stack.client("cloudwatch").list_metrics(Namespace="Meridian/Runbooks")["Metrics"]
    return {m["MetricName"] for m in metrics}


def _steps_recorded(report: dict[str, Any], stack: Any) -> None:
    """The report times each step and halt to resume; both are published as CloudWatch metrics."""
    assert report["rto"]["halt_to_resume_seconds"] > 0
    steps = [s["step"] for s in report["rto"]["steps"]]
    assert steps[0] == "runbook start"
    assert {"halt order entry", "restore engine (verified)", "validate integrity"} <= set(steps)
    assert {"HaltToResumeSeconds", "RecoveryStepSeconds"} <= _metrics(stack)


TRADER = "arn:aws:sts::123456789012:assumed-role/meridian-trader-prod/alice"


def _first_order_after_the_resume(world: Any) -> threading.Thread:
    """A client retrying its order on the recovery region's API until it is accepted, from the halt
    on (an order accepted before it would be the old primary's last, not the recovery's first)."""

    def trade() -> None:
        deadline = time.monotonic() + 60
        while not halted(world) and time.monotonic() < deadline:
            time.sleep(0.02)
        while time.monotonic() < deadline:
            status, _ = submit(
                world.stack, TRADER, {"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "180.00"}
            )
            if status == 201:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    return thread


def test_failover_drill_promotes_restores_switches_validates_resumes_and_reports_its_rto(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node, active_node=True, order_api=True)
    register_principal(world.stack, TRADER, "trader", "ACC-ALICE")  # replicated from the primary
    announcements = tap_bus(
        world.stack,
        {
            "source": ["meridian.trading", "meridian.runbooks"],
            "detail-type": ["trading.halted.v1", "runbook.completed.v1"],  # not the client's rejects
        },
    )

    execution = world.stack.start("DrFailoverStateMachine", DRILL)
    client = _first_order_after_the_resume(world)
    result = world.stack.wait(execution, timeout=120)
    client.join(10)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    report = json.loads(result["output"])
    rto = report["rto"]
    print(f"\nDR failover RTO (runbook start to first order): {rto['seconds']:.3f} s")
    assert rto["started_by"] == "runbook start"  # started by hand: no health probe to clock from
    assert rto["seconds"] >= rto["halt_to_resume_seconds"] > 0
    assert report["first_order"]["account"] == "ACC-ALICE"
    # The client's order may beat the runbook's own wait for it, by a few milliseconds.
    assert rto["steps"][-1]["step"] in ("first order accepted", "resume order entry")
    assert round(sum(s["seconds"] for s in rto["steps"]), 3) == rto["seconds"]
    _steps_recorded(report, world.stack)
    assert "RecoveryTimeSeconds" in _metrics(world.stack)
    assert report["trading_resumed"]
    assert not halted(world)
    assert not replicating(world)
    assert primary_record(world) == DR_ENDPOINT
    checks = {c["name"]: c for c in report["integrity"]["checks"]}
    assert all(c["ok"] for c in checks.values()), checks
    compared = {
        "ledger_trade_count",
        "ledger_within_engine",
        "ledger_checksum",
        "acknowledged_orders",
        "old_primary_book:AAPL",
        "active_book:AAPL",
    }
    assert all(not checks[name]["skipped"] for name in compared), checks
    assert checks["market_data:AAPL"]["skipped"]  # this world publishes no market data
    assert report["reconcile"] == {"orders": []}
    assert report["restored_seq"] == 12
    metrics = world.stack.client("cloudwatch").list_metrics(Namespace="Meridian/Runbooks")["Metrics"]
    assert any(m["MetricName"] == "RecoveryTimeSeconds" for m in metrics)
    point = report["nodes"][0]["restore_point"]
    assert world.stack.client("s3").head_object(Bucket=world.bucket, Key=point)["ContentLength"] > 0
    kinds = [(m["detail-type"], m["detail"].get("halted")) for m in announcements.messages(at_least=3)]
    assert ("trading.halted.v1", True) in kinds
    assert ("trading.halted.v1", False) in kinds
    assert ("runbook.completed.v1", None) in kinds


def test_a_lagging_replica_stops_the_failover_with_trading_halted(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node, lag="ALARM")

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "ReplicaNotReady")
    assert "ALARM" in result["cause"]
    assert halted(world)
    assert replicating(world)
    assert primary_record(world) == PRIMARY_ENDPOINT


def test_a_tampered_archive_stops_the_failover_before_the_promotion(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node)
    s3 = world.stack.client("s3")
    victim = archived_segments(s3, world.bucket, PREFIX)[-1].key
    original = s3.get_object(Bucket=world.bucket, Key=victim)
    body = bytearray(original["Body"].read())
    body[40] ^= 0x01
    s3.put_object(Bucket=world.bucket, Key=victim, Body=bytes(body), Metadata=original["Metadata"])

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "ChecksumMismatch")
    assert "SHA-256" in result["cause"]
    assert halted(world)
    assert replicating(world)


def test_an_archive_that_cannot_be_restored_stops_the_failover(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node)
    s3 = world.stack.client("s3")
    s3.delete_object(Bucket=world.bucket, Key=archived_segments(s3, world.bucket, PREFIX)[0].key)

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "EngineRestoreFailed")
    assert halted(world)
    assert replicating(world)
    assert "SwitchTraffic" not in world.stack.states_entered(
        world.stack.client("stepfunctions").list_executions(
            stateMachineArn=world.stack.state_machines["DrFailoverStateMachine"]
        )["executions"][0]["executionArn"]
    )


def test_an_integrity_mismatch_stops_the_failover_with_trading_halted(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node, lost_trades=1)

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "IntegrityCheckFailed")
    assert "trades are missing" in result["cause"]
    assert halted(world)


def test_failback_makes_the_primary_region_active_again(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = build_world(moto, postgres_url, tmp_path, start_node, failback=True)
    assert primary_record(world) == DR_ENDPOINT

    result = world.stack.run("DrFailbackStateMachine", FAILBACK)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    report = json.loads(result["output"])
    print(f"\nDR failback halt to resume: {report['rto']['halt_to_resume_seconds']:.3f} s")
    assert report["runbook"] == "dr-failback"
    _steps_recorded(report, world.stack)
    assert report["first_order"]["accepted_at"] is None  # nobody traded: not measured, not failed
    assert report["rto"]["seconds"] is None
    assert primary_record(world) == PRIMARY_ENDPOINT
    assert not replicating(world)
    assert not halted(world)
