"""What the DR drill prints: the trigger's decisions, each state of the runbook as it is entered, and
the recovery report the runbook wrote (the RTO and each step, integrity, what to reconcile)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from meridian_local.cloud.runbook_stack import RunbookStack

if TYPE_CHECKING:
    from meridian_local.drills.dr_session import DrillSession
    from meridian_local.drills.dr_trader import FailoverTrader

Say = Callable[[str], None]
TRIGGER, FAILOVER, FAILBACK = (
    "DrAutomaticFailoverStateMachine",
    "DrFailoverStateMachine",
    "DrFailbackStateMachine",
)


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


class Watcher:
    """Follows one region's runbooks, printing each line with the seconds since it was created."""

    def __init__(self, stack: RunbookStack, say: Say) -> None:
        self.stack, self.say = stack, say
        self.sfn = stack.client("stepfunctions")
        self.started_at = datetime.now(UTC)
        self._triggers: dict[str, str] = {}  # execution arn -> status printed
        self._states_shown = 0

    def _at(self, moment: datetime) -> str:
        return f"+{(moment - self.started_at).total_seconds():7.3f} s"

    def _executions(self, logical_id: str) -> list[dict[str, Any]]:
        arn = self.stack.state_machines.get(logical_id)
        return list(self.sfn.list_executions(stateMachineArn=arn)["executions"]) if arn else []

    def _follow_triggers(self) -> bool:
        """Print each trigger execution as it starts and what it decided; True when all are done."""
        done = True
        for execution in sorted(self._executions(TRIGGER), key=lambda e: e["startDate"]):
            arn, status = execution["executionArn"], execution["status"]
            shown = self._triggers.get(arn)
            if shown is None:
                event = json.loads(self.sfn.describe_execution(executionArn=arn)["input"])
                alarm = event.get("detail", {}).get("alarmName")
                state = event.get("detail", {}).get("state", {}).get("value")
                self.say(
                    f"  {self._at(execution['startDate'])}  trigger {execution['name'][:8]}: {alarm} {state}"
                )
                self._triggers[arn] = "RUNNING"
            if status != "RUNNING" and self._triggers[arn] == "RUNNING":
                described = self.sfn.describe_execution(executionArn=arn)
                decided = json.loads(described.get("output") or "{}").get("outcome") or (
                    f"{described.get('error')}: {described.get('cause', '')[:200]}"
                )
                self.say(f"  {self._at(described['stopDate'])}  trigger {execution['name'][:8]}: {decided}")
                self._triggers[arn] = status
            done = done and status != "RUNNING"
        return done

    def _follow_states(self, execution_arn: str) -> None:
        entered = [e for e in _history(self.sfn, execution_arn) if "stateEnteredEventDetails" in e]
        for event in entered[self._states_shown :]:
            self.say(f"  {self._at(event['timestamp'])}  {event['stateEnteredEventDetails']['name']}")
        self._states_shown = len(entered)

    def _finish(self, execution_arn: str) -> dict[str, Any] | None:
        self._follow_states(execution_arn)
        described = self.sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "SUCCEEDED":
            self.say(
                f"Runbook stopped ({described['status']}): {described.get('error', '?')}: "
                f"{described.get('cause', 'no cause given')}"
            )
            return None
        report: dict[str, Any] = json.loads(described["output"])
        return report

    def follow_failover(self, timeout: float) -> dict[str, Any] | None:
        """The trigger executions and the failover one of them starts, to the failover's end."""
        deadline = time.monotonic() + timeout
        failover: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            triggers_done = self._follow_triggers()
            if failover is None:
                started = self._executions(FAILOVER)
                if started:
                    failover = started[0]
                    self.say(
                        f"  {self._at(failover['startDate'])}  failover runbook {failover['name']} started:"
                    )
            if failover is not None:
                self._follow_states(failover["executionArn"])
                status = self.sfn.describe_execution(executionArn=failover["executionArn"])["status"]
                if status != "RUNNING" and triggers_done:
                    return self._finish(failover["executionArn"])
            time.sleep(0.1)
        self.say(f"No failover finished within {timeout:.0f} s")
        return None

    def run_failback(self, timeout: float) -> dict[str, Any] | None:
        arn = self.stack.start(FAILBACK, {"operator": "dr-drill", "reason": "fail back after the drill"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._follow_states(arn)
            if self.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                return self._finish(arn)
            time.sleep(0.1)
        self.say(f"The failback did not finish within {timeout:.0f} s")
        return None


def _trades(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM trades").fetchone()
    return int(row[0]) if row else 0


def integrity_line(report: dict[str, Any], session: DrillSession) -> str:
    assert session.ledgers is not None
    checks = {c["name"]: c for c in report.get("integrity", {}).get("checks", [])}
    primary, replica = _trades(session.ledgers.primary), _trades(session.ledgers.replica)
    parts = [f"trades us-east-1 {primary} {'=' if primary == replica else '!='} us-west-2 {replica}"]
    for name, check in checks.items():
        if name.startswith(("ledger_checksum", "active_book:", "market_data:", "acknowledged_orders")):
            verdict = "skipped" if check["skipped"] else ("ok" if check["ok"] else "FAILED")
            parts.append(f"{name} {verdict} ({check['detail']})")
    ok = bool(report.get("integrity", {}).get("ok"))
    return f"Integrity: {'ok' if ok else 'MISMATCH'}; " + "; ".join(parts)


def _metric_recorded(stack: RunbookStack) -> bool:
    metrics = stack.client("cloudwatch").list_metrics(Namespace="Meridian/Runbooks")["Metrics"]
    return any(m["MetricName"] == "RecoveryTimeSeconds" for m in metrics)


def print_recovery(
    report: dict[str, Any] | None, trader: FailoverTrader, region: str, session: DrillSession, say: Say
) -> bool:
    """The recovery time and its steps, the client's view, integrity and what to reconcile."""
    if report is None:
        return False
    rto, first = report["rto"], report.get("first_order") or {}
    stack = session.dr if region == "us-west-2" else session.primary
    assert stack is not None
    measured = "recorded as Meridian/Runbooks RecoveryTimeSeconds" if _metric_recorded(stack) else "no metric"
    if rto.get("seconds") is None:
        say(f"RTO: not measured ({rto.get('not_measured')})")
    else:
        say(
            f"RTO ({rto['started_by']} to first order accepted): {rto['seconds']:.3f} s "
            f"(target {rto['target_seconds']:g} s; {measured})"
        )
        say(
            f"  from {rto['started_at']} to {rto['first_order_accepted_at']} "
            f"(order {first.get('client_order_id')} of {first.get('account')} accepted by {region}'s API)"
        )
    for step in rto.get("steps", []):
        say(f"    {step['step']:<38} {step['seconds']:8.3f} s")
    seen = trader.first_in.get(region)
    if seen is not None:
        at = seen.at.isoformat(timespec="milliseconds")
        say(f"  the client saw {seen.client_order_id} accepted in {region} at {at}")
    if trader.refused:
        tries = ", ".join(f"{why} x{count}" for why, count in sorted(trader.refused.items()))
        say(f"  the client's refused attempts so far: {tries}")
    say(integrity_line(report, session))
    reconcile = report.get("reconcile") or {}
    for kind in ("orders", "trades"):
        items = reconcile.get(kind) or []
        if items:
            ids = [
                i.get("client_order_id")
                or f"{i['execution_id']} ({i['buy_client_order_id']}/{i['sell_client_order_id']})"
                for i in items
            ]
            say(
                f"To reconcile ({kind} the primary acknowledged beyond the restored engine): {', '.join(ids)}"
            )
    return bool(report.get("integrity", {}).get("ok"))
