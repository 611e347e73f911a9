"""The automatic failover on moto server: alarm state changes of the primary (as the primary's
forwarding rule puts them on the recovery region's default bus) -> the dr stack's rule -> the
trigger state machine -> the failover runbook.

moto delivers the rule's events to a bridge queue, forwarded to the state machine as EventBridge
would (moto cannot target state machines). The trigger's waits are real: UnhealthyForSeconds is 2 s
here. Wall-clock figures are printed, never bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meridian_local.drills.dr_orders import register_principal, submit
from meridian_local.drills.dr_world import World, build_world, halted
from tests.integration.statemachines.conftest import tap_topic

pytestmark = pytest.mark.integration
UNHEALTHY_FOR = 2
ARMED = {"AutomaticFailover": "enabled", "UnhealthyForSeconds": str(UNHEALTHY_FOR)}


@pytest.fixture
def world(moto: Any, postgres_url: str, tmp_path: Path, start_node: Any) -> Iterator[World]:
    built = build_world(
        moto,
        postgres_url,
        tmp_path,
        start_node,
        active_node=True,
        order_api=True,
        parameters={**ARMED, "AutomaticFailoverAcceptsDataLoss": "true"},
        deliver_rules=True,
    )
    try:
        yield built
    finally:
        built.stack.close()


def _primary(world: World) -> str:
    return str(world.stack.parameters["PeerEnvironment"])


def _alarm_change(world: World, alarm: str, state: str, window_start: datetime | None = None) -> None:
    """What CloudWatch puts on the bus when an alarm changes state (forwarded to this region)."""
    now = datetime.now(UTC)
    detail = {
        "alarmName": f"meridian-{_primary(world)}-{alarm}",
        "state": {
            "value": state,
            "reason": f"Threshold Crossed: 1 datapoint was {'' if state == 'ALARM' else 'not '}less than 1",
            "reasonData": json.dumps(
                {"version": "1.0", "startDate": (window_start or now).isoformat(timespec="milliseconds")}
            ),
            "timestamp": now.isoformat(timespec="milliseconds"),
        },
        "previousState": {"value": "OK" if state == "ALARM" else "ALARM"},
    }
    entry = {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }
    failed = world.stack.client("events").put_events(Entries=[entry])["FailedEntryCount"]
    assert failed == 0


def _executions(world: World, machine: str) -> list[dict[str, Any]]:
    sfn = world.stack.client("stepfunctions")
    return list(sfn.list_executions(stateMachineArn=world.stack.state_machines[machine])["executions"])


def _finished(world: World, machine: str, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    sfn = world.stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _executions(world, machine)
        if len(runs) >= count and all(r["status"] != "RUNNING" for r in runs):
            return [sfn.describe_execution(executionArn=r["executionArn"]) for r in runs]
        time.sleep(0.1)
    raise TimeoutError(f"{machine}: {count} finished executions not seen")


def _switch(world: World) -> str:
    name = world.stack.refs["AutomaticFailoverSwitch"]
    return str(world.stack.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])


def _halt_seen(world: World) -> bool:
    item = world.stack.client("dynamodb").get_item(
        TableName=world.stack.refs["TradingControlsTable"], Key={"scope": {"S": "GLOBAL"}}
    )
    return "Item" in item


def _trader_retrying_until_accepted(world: World) -> threading.Thread:
    trader = "arn:aws:sts::123456789012:assumed-role/meridian-trader-dr/alice"
    register_principal(world.stack, trader, "trader", "ACC-ALICE")  # replicated from the primary

    def trade() -> None:
        # Clients reach this region once the failover switched traffic: here, once it halted trading
        # (the stand-in for the activated node serves from the start, which the real one does not).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _halt_seen(world):
            time.sleep(0.05)
        while time.monotonic() < deadline:
            order = {"symbol": "AAPL", "side": "SELL", "quantity": 1, "price": "200.00"}
            if submit(world.stack, trader, order)[0] == 201:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    return thread


def test_an_alarm_that_stays_starts_one_failover_that_clocks_from_the_first_failed_probe(
    world: World,
) -> None:
    notices = tap_topic(world.stack, world.stack.refs["RunbookNotificationsTopic"])
    first_failed_probe = datetime.now(UTC) - timedelta(seconds=3)
    client = _trader_retrying_until_accepted(world)
    # Two of the primary's alarms go to ALARM together: one failover, never two.
    _alarm_change(world, "hotpath-no-healthy-node", "ALARM", first_failed_probe)
    _alarm_change(world, "orders-api-server-errors", "ALARM", first_failed_probe)

    triggers = _finished(world, "DrAutomaticFailoverStateMachine", 2)
    (failover,) = _finished(world, "DrFailoverStateMachine", 1)
    client.join(30)

    assert failover["status"] == "SUCCEEDED", failover.get("cause")
    assert failover["name"].startswith("auto-")
    outcomes = sorted(json.loads(t["output"])["outcome"] for t in triggers if t["status"] == "SUCCEEDED")
    assert outcomes[0] in ("a failover is already running", "another trigger holds the failover lock"), (
        outcomes
    )
    assert outcomes[1] == "failed over"
    report = json.loads(failover["output"])
    rto = report["rto"]
    print(f"\nautomatic failover RTO (first failed probe to first order): {rto['seconds']:.3f} s")
    assert rto["started_by"] == "first failed health probe"
    assert rto["started_at"].startswith(first_failed_probe.isoformat(timespec="milliseconds")[:23])
    steps = [s["step"] for s in rto["steps"]]
    assert steps[:3] == ["detection", "trigger (unhealthy-for wait, guards)", "runbook start"]
    assert rto["seconds"] >= UNHEALTHY_FOR + 3  # the wait and the time before the alarm are in it
    assert round(sum(s["seconds"] for s in rto["steps"]), 3) == rto["seconds"]
    assert report["trigger"]["alarm"].endswith(("hotpath-no-healthy-node", "orders-api-server-errors"))
    assert not halted(world)
    assert _switch(world) == "off"  # this region is active: no second automatic failover
    lock = world.stack.client("dynamodb").get_item(
        TableName=world.stack.refs["DrControlTable"], Key={"key": {"S": "failover-lock"}}
    )
    assert "Item" not in lock
    messages = notices.messages(at_least=2, wait=10)
    subjects = [m.get("Subject", "") for m in messages]
    started = [m for m in messages if m.get("Subject", "").startswith("Automatic failover started")]
    assert len(started) == 1, subjects
    reason = json.loads(started[0]["Message"])
    assert reason["reason"].startswith("Threshold Crossed")
    assert reason["first_failed_probe_at"] == rto["started_at"]
    assert any(s.startswith("dr-failover complete") for s in subjects), subjects


def test_a_flap_shorter_than_the_unhealthy_time_starts_nothing(world: World) -> None:
    _alarm_change(world, "hotpath-no-healthy-node", "ALARM")
    time.sleep(0.5)
    _alarm_change(world, "hotpath-no-healthy-node", "OK")

    triggers = _finished(world, "DrAutomaticFailoverStateMachine", 2)

    outcomes = sorted(json.loads(t["output"]).get("outcome", "recorded") for t in triggers)
    assert outcomes == ["flap ignored", "recorded"], outcomes
    assert _executions(world, "DrFailoverStateMachine") == []
    assert _switch(world) == "on"


def test_with_the_switch_off_nothing_starts_and_the_operators_are_told(world: World) -> None:
    notices = tap_topic(world.stack, world.stack.refs["RunbookNotificationsTopic"])
    world.stack.client("ssm").put_parameter(
        Name=world.stack.refs["AutomaticFailoverSwitch"], Value="off", Overwrite=True
    )
    _alarm_change(world, "hotpath-no-healthy-node", "ALARM")

    (trigger,) = _finished(world, "DrAutomaticFailoverStateMachine", 1)

    assert json.loads(trigger["output"])["outcome"] == "automatic failover is switched off"
    assert _executions(world, "DrFailoverStateMachine") == []
    (notice,) = notices.messages(at_least=1)
    assert notice["Subject"].startswith("Automatic failover is off")
    assert json.loads(notice["Message"])["alarm"].endswith("hotpath-no-healthy-node")


def test_switched_off_during_the_wait_it_starts_nothing(world: World) -> None:
    _alarm_change(world, "orders-api-server-errors", "ALARM")
    time.sleep(0.5)
    world.stack.client("ssm").put_parameter(
        Name=world.stack.refs["AutomaticFailoverSwitch"], Value="off", Overwrite=True
    )

    (trigger,) = _finished(world, "DrAutomaticFailoverStateMachine", 1)

    assert json.loads(trigger["output"])["outcome"] == "automatic failover is switched off"
    assert _executions(world, "DrFailoverStateMachine") == []
