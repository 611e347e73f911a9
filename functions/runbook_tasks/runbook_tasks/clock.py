"""The recovery-time clock: elapsed time between the runbook's own timestamps."""

from __future__ import annotations

from datetime import datetime


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 timestamp as Step Functions writes it (``$$.State.EnteredTime``: ``...Z``)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return value


def elapsed_seconds(started: str, finished: str) -> float:
    seconds = (parse_timestamp(finished) - parse_timestamp(started)).total_seconds()
    if seconds < 0:
        raise ValueError(f"{finished} is before {started}")
    return round(seconds, 3)
