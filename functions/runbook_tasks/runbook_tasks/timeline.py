"""The recovery time, step by step: from the first failed health probe to the first order accepted.

The clock starts at the first failed health probe when an automatic trigger gives it (the alarm's
evaluated window starts at or before that probe, so the time is never understated), else at the
runbook's start. It stops at the first order the recovery region's API accepted after the resume.
Between the two, each step is timed from the execution's own history: a step starts when its first
state is entered and ends when the next step starts, so the steps add up to the recovery time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_tasks.clock import elapsed_seconds, parse_timestamp

# The state that opens each step of the switchover runbook (statemachines/dr-switchover.asl.json).
STEP_STARTS: tuple[tuple[str, str], ...] = (
    ("HaltTrading", "halt order entry"),
    ("CheckReplica", "confirm replication"),
    ("RestoreMatchingEngine", "restore engine (verified)"),
    ("PromoteReplica", "promote ledger replica"),
    ("ActivateStandbyNodes", "activate standby nodes"),
    ("IsDnsManaged", "switch traffic"),
    ("ValidateIntegrity", "validate integrity"),
    ("WatchFirstOrder", "resume order entry"),
    ("AwaitFirstOrder", "first order accepted"),
)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    started_at: datetime
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "started_at": self.started_at.isoformat(), "seconds": self.seconds}


def entered_states(history: Iterable[Mapping[str, Any]]) -> list[tuple[str, datetime]]:
    """(state name, time entered) from an execution history, in order."""
    entered = []
    for event in history:
        details = event.get("stateEnteredEventDetails")
        if details:
            at = event["timestamp"]
            entered.append((str(details["name"]), at if isinstance(at, datetime) else parse_timestamp(at)))
    return sorted(entered, key=lambda item: item[1])


def boundaries(
    clock_start: datetime,
    execution_start: datetime,
    entered: Sequence[tuple[str, datetime]],
    signalled_at: datetime | None = None,
) -> list[tuple[str, datetime]]:
    """(step name, start) in time order: detection and trigger first when the trigger gave them."""
    starts: list[tuple[str, datetime]] = []
    if signalled_at is not None and signalled_at >= clock_start:
        starts += [("detection", clock_start), ("trigger (unhealthy-for wait, guards)", signalled_at)]
    elif clock_start < execution_start:
        starts.append(("detection and trigger", clock_start))
    starts.append(("runbook start", execution_start))
    first_entry: dict[str, datetime] = {}
    for name, at in entered:
        first_entry.setdefault(name, at)
    for state, step in STEP_STARTS:
        if state in first_entry:
            starts.append((step, first_entry[state]))
    return sorted(starts, key=lambda item: item[1])


def steps(starts: Sequence[tuple[str, datetime]], end: datetime) -> list[Step]:
    """Each step from its start to the next one's (the last to ``end``), in seconds. A step that
    would start after ``end`` did not happen (an order accepted before the runbook waited for it).
    Boundaries are rounded to the millisecond, not the durations: the steps add up exactly."""
    starts = [start for start in starts if start[1] <= end] or list(starts[:1])
    origin = starts[0][1]

    def ms(at: datetime) -> int:
        return round((at - origin).total_seconds() * 1000)

    found = []
    for (name, began), (_, following) in zip(starts, [*starts[1:], ("end", end)], strict=True):
        found.append(Step(name, began, max(0, ms(following) - ms(began)) / 1000))
    return found


def metric_data(
    runbook: str, environment: str, rto_seconds: float | None, halt_to_resume: float, measured: Sequence[Step]
) -> list[dict[str, Any]]:
    """CloudWatch MetricData: the recovery time, halt to resume, and one datum per step."""
    dimensions = [{"Name": "Runbook", "Value": runbook}, {"Name": "Environment", "Value": environment}]

    def datum(name: str, value: float, extra: list[dict[str, str]] | None = None) -> dict[str, Any]:
        labels = dimensions + (extra or [])
        return {"MetricName": name, "Unit": "Seconds", "Value": value, "Dimensions": labels}

    data = [datum("HaltToResumeSeconds", halt_to_resume)]
    if rto_seconds is not None:
        data.append(datum("RecoveryTimeSeconds", rto_seconds))
    for step in measured:
        data.append(datum("RecoveryStepSeconds", step.seconds, [{"Name": "Step", "Value": step.name}]))
    return data


def measure(
    payload: dict[str, Any], history: list[dict[str, Any]], environment: str, target_seconds: float
) -> dict[str, Any]:
    """The recovery report of a switchover run: the RTO (clock start to first order accepted), halt to
    resume, each step from the execution's history, and the CloudWatch datums to record."""
    clock = payload["clock"]
    started = parse_timestamp(str(clock["started_at"]))
    execution_start = parse_timestamp(str(payload["execution_started_at"]))
    halt_to_resume = elapsed_seconds(str(payload["halted_at"]), str(payload["resumed_at"]))
    first_order = payload.get("first_order") or {}
    accepted = first_order.get("accepted_at")
    end = parse_timestamp(str(accepted)) if accepted else parse_timestamp(str(payload["resumed_at"]))
    trigger = payload.get("trigger") or {}
    # The alarm's own state change time (milliseconds); the event's time has whole seconds only.
    signalled = trigger.get("changed_at") or trigger.get("signalled_at")
    starts = boundaries(
        started,
        execution_start,
        entered_states(history),
        parse_timestamp(str(signalled)) if signalled else None,
    )
    measured = steps(starts, end)
    seconds = round(max(0.0, (end - started).total_seconds()), 3) if accepted else None
    return {
        "seconds": seconds,
        "target_seconds": target_seconds,
        "within_target": None if seconds is None else seconds <= target_seconds,
        "started_at": clock["started_at"],
        "started_by": clock.get("started_by", ""),
        "first_order_accepted_at": accepted,
        "not_measured": None if accepted else first_order.get("reason", "no order was accepted"),
        "halted_at": payload["halted_at"],
        "resumed_at": payload["resumed_at"],
        "halt_to_resume_seconds": halt_to_resume,
        "steps": [step.as_dict() for step in measured],
        "metric_data": metric_data(str(payload["runbook"]), environment, seconds, halt_to_resume, measured),
    }
